/* fault: see fault.h. Rules are written once by fault_arm, then only counted. */
#include "base/fault.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/str.h"

#define FAULT_RULES_MAX 16

struct rule {
    char point[32];
    char text[128];  /* non-empty: match by subject */
    int64_t nth;
    bool from_on;
    atomic_long calls;
};

static struct rule rules[FAULT_RULES_MAX];
static int nrules;

static int parse_rule(const char *s, size_t len, struct rule *r)
{
    char tmp[192];
    char *sep;

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    sep = strpbrk(tmp, "=@");
    if (!sep || sep == tmp || (size_t)(sep - tmp) >= sizeof(r->point))
        return -1;
    memset(r, 0, sizeof(*r));
    memcpy(r->point, tmp, (size_t)(sep - tmp));
    if (*sep == '@') {
        snprintf(r->text, sizeof(r->text), "%s", sep + 1);
        return r->text[0] ? 0 : -1;
    }
    size_t n = strlen(sep + 1);
    if (n > 0 && sep[n] == '+') {
        r->from_on = true;
        sep[n] = '\0';
    }
    if (str_to_int64(sep + 1, &r->nth) || r->nth < 1)
        return -1;
    return 0;
}

/* "ROLE:" prefix of a rule: 1 when it names role (or any role if role is NULL),
 * 0 when another role, and *skip the prefix length. No prefix: 1. */
static int role_matches(const char *s, size_t len, const char *role, size_t *skip)
{
    static const char *const roles[] = {"serve:", "worker:"};

    *skip = 0;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        size_t n = strlen(roles[i]);
        if (len > n && strncmp(s, roles[i], n) == 0) {
            *skip = n;
            return !role || strncmp(roles[i], role, n - 1) == 0;
        }
    }
    return 1;
}

int fault_arm(const char *spec)
{
    return fault_arm_role(spec, NULL);
}

int fault_arm_role(const char *spec, const char *role)
{
    nrules = 0;
    if (!spec || !*spec)
        return 0;
    while (*spec) {
        const char *end = strchr(spec, ',');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        size_t skip;
        int mine = role_matches(spec, len, role, &skip);
        if (nrules == FAULT_RULES_MAX || parse_rule(spec + skip, len - skip, &rules[nrules]))
            return -1;
        if (mine)
            nrules++;
        if (!end)
            break;
        spec = end + 1;
    }
    return 0;
}

bool fault_hit(const char *point, const char *subject)
{
    for (int i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (strcmp(r->point, point) != 0)
            continue;
        if (r->text[0]) {
            if (subject && strstr(subject, r->text))
                return true;
            continue;
        }
        long n = atomic_fetch_add(&r->calls, 1) + 1;
        if (n == r->nth || (r->from_on && n >= r->nth))
            return true;
    }
    return false;
}
