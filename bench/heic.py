#!/usr/bin/env python3
"""bench/heic: phone photos (HEIC grids) through Shoebox against vipsthumbnail, one run.

1. makes (once) a corpus of BENCH_HEIC_COUNT (30) phone-style 12 MP HEICs with
   build/make_heic: 4032x3024 as a grid of 512 px HEVC tiles, a 320 px embedded
   thumbnail, EXIF, every 7th a portrait through irot (tests/unit/media/heicgen.c)
2. starts `shoebox serve --batch-delay 0` (2 workers) with a fresh data dir, uploads the
   files in one request with ../shared/bench/upload_bench.py: photos/s and the peak RSS
   of the server and its workers together (sampled, and the kernel's high-water marks)
3. times vipsthumbnail making the same two sizes (1440, then 256 px) from the same files
   with 2 processes, as bench/ingest.py does for JPEG
Steps 2 and 3 run BENCH_ROUNDS (3) times, interleaved; the verdict uses the medians
(goal of issue 13: at least 2.5x vipsthumbnail, peak RSS under 200 MB).
Writes build/bench/heic.json.
"""
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest  # noqa: E402  (Server, upload, timed_peer, vips_peer, median)

ROOT = ingest.ROOT
CORPUS = os.environ.get("SHOEBOX_HEIC_CORPUS", "/tmp/shoebox-heic-corpus")
COUNT = int(os.environ.get("BENCH_HEIC_COUNT", "30"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MAKE = os.path.join(ROOT, "build", "make_heic")


def ensure_corpus():
    folder = os.path.join(CORPUS, str(COUNT))
    have = [f for f in os.listdir(folder)] if os.path.isdir(folder) else []
    if len(have) < COUNT:
        print(f"making {COUNT} phone-style HEICs in {folder} (about 10 s of CPU each, once)",
              flush=True)
        procs = [subprocess.Popen([MAKE, folder, str(COUNT), "4032", "3024", str(i + 1), "2"],
                                  stdout=subprocess.DEVNULL) for i in range(2)]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError("make_heic failed")
    return folder


def shoebox_run(folder):
    server = ingest.Server()
    try:
        r, first = ingest.upload(server, folder, "shoebox-heic")
    finally:
        server.stop()
    srv = r.get("server") or {}
    return {"photos_per_s": r.get("photos_per_s"), "wall_s": r.get("wall_s"),
            "uploaded": r.get("uploaded"), "failed": r.get("failed"),
            "first_thumbnail_s": first, "peak_rss_mib": srv.get("rss_peak_sum_mib"),
            "hwm_sum_mib": srv.get("hwm_sum_mib"), "cpu_s": srv.get("cpu_s")}


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def vips_run(files):
    """vipsthumbnail's wall figures, and the CPU its processes used."""
    c0 = children_cpu()
    one = ingest.timed_peer("vips", files, ingest.vips_peer)
    one["cpu_s"] = round(children_cpu() - c0, 2)
    return one


def cpu_ratio(one):
    """CPU seconds per photo of vipsthumbnail over Shoebox's (server + workers): what the
    throughput ratio is when both keep the 2 cores busy, and far less disturbed than
    wall time by other load on the machine."""
    sb, vt = one["shoebox"].get("cpu_s"), one["vipsthumbnail_2proc"].get("cpu_s")
    return round(vt / sb, 2) if sb and vt else None


def main():
    os.makedirs(ingest.OUT, exist_ok=True)
    folder = ensure_corpus()
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder))
             if f.endswith(".HEIC")][:COUNT]
    res = {"files": len(files), "cores": os.cpu_count(), "rounds": []}
    for r in range(ROUNDS):
        one = {"load_avg_1m": os.getloadavg()[0], "shoebox": shoebox_run(folder),
               "vipsthumbnail_2proc": vips_run(files)}
        one["cpu_ratio"] = cpu_ratio(one)
        if one["shoebox"]["photos_per_s"]:
            one["shoebox_vs_vipsthumbnail"] = round(
                one["shoebox"]["photos_per_s"] / one["vipsthumbnail_2proc"]["photos_per_s"], 2)
        res["rounds"].append(one)
        print(f"round {r + 1}/{ROUNDS}: shoebox {one['shoebox']['photos_per_s']} photos/s "
              f"(peak RSS {one['shoebox']['peak_rss_mib']} MiB, failed "
              f"{one['shoebox']['failed']}), vipsthumbnail "
              f"{one['vipsthumbnail_2proc']['photos_per_s']}, ratio "
              f"{one.get('shoebox_vs_vipsthumbnail')}; CPU s/photo shoebox "
              f"{(one['shoebox']['cpu_s'] or 0) / len(files):.2f}, vipsthumbnail "
              f"{one['vipsthumbnail_2proc']['cpu_s'] / len(files):.2f}, ratio {one['cpu_ratio']} "
              f"(load {one['load_avg_1m']:.1f})", flush=True)
    rounds = res["rounds"]
    med = {k: ingest.median([x[k]["photos_per_s"] for x in rounds])
           for k in ("shoebox", "vipsthumbnail_2proc")}
    res["median_photos_per_s"] = med
    res["peak_rss_mib_max"] = max(x["shoebox"]["peak_rss_mib"] or 0 for x in rounds)
    res["hwm_sum_mib_max"] = max(x["shoebox"]["hwm_sum_mib"] or 0 for x in rounds)
    if med["shoebox"] and med["vipsthumbnail_2proc"]:
        res["shoebox_vs_vipsthumbnail"] = round(med["shoebox"] / med["vipsthumbnail_2proc"], 2)
    res["ratio_each_round"] = [x.get("shoebox_vs_vipsthumbnail") for x in rounds]
    res["cpu_ratio_each_round"] = [x.get("cpu_ratio") for x in rounds]
    res["cpu_ratio"] = ingest.median(res["cpu_ratio_each_round"])
    res["goal_met"] = bool((res.get("shoebox_vs_vipsthumbnail") or 0) >= 2.5
                           and res["peak_rss_mib_max"] < 200)
    with open(os.path.join(ingest.OUT, "heic.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(f"\n== bench/heic ({res['files']} phone-style 12 MP HEICs, {res['cores']} cores, "
          f"median of {ROUNDS} rounds) ==")
    print(f"shoebox end to end     : {med['shoebox']} photos/s (rounds: "
          f"{', '.join(str(x['shoebox']['photos_per_s']) for x in rounds)}), peak RSS "
          f"{res['peak_rss_mib_max']} MiB (high-water marks summed {res['hwm_sum_mib_max']} MiB)")
    print(f"vipsthumbnail, 2 procs : {med['vipsthumbnail_2proc']} photos/s")
    print(f"shoebox / vipsthumbnail: {res.get('shoebox_vs_vipsthumbnail')} (each round: "
          f"{', '.join(str(x) for x in res['ratio_each_round'])}); goal >= 2.5 and < 200 MB: "
          f"{'met' if res['goal_met'] else 'NOT met'}")
    print(f"CPU per photo ratio    : {res['cpu_ratio']} (each round: "
          f"{', '.join(str(x) for x in res['cpu_ratio_each_round'])}; vipsthumbnail's CPU "
          f"over Shoebox's server + workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
