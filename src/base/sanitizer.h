/*
 * sanitizer: UNDER_ASAN is 1 in a build with AddressSanitizer (gcc's
 * __SANITIZE_ADDRESS__, clang's __has_feature), else 0. ASan reserves terabytes
 * of address space, so code and tests that set RLIMIT_AS ask it first.
 */
#ifndef SHOEBOX_BASE_SANITIZER_H
#define SHOEBOX_BASE_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#endif
