// SPDX-License-Identifier: GPL-2.0
/*
 * edu-lab-ioctl: the guest side of the edu_lab.ko test (a static program,
 * no edu-test needed).
 *
 *   edu-lab-ioctl [-d DEVICE] factorial N
 *       prints "N! = R" as computed by the device (interrupt-driven).
 *   edu-lab-ioctl [-d DEVICE] pages FIRST LAST
 *       for each BAR0 page FIRST..LAST: takes a page fault (an exception
 *       delivered inside the guest), then at once makes the driver read
 *       that page for the first time. Each read is a first access to a
 *       fresh MMIO page right after an event, the pattern that used to
 *       end nested guests (docs/pipeline.md); prints one summary line.
 *
 * DEVICE defaults to /dev/edu_lab. Exits 0 on success, 1 on any error,
 * 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu_lab.h"

static const char *prog = "edu-lab-ioctl";

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr,
		"usage: %s [-d DEVICE] factorial N\n"
		"       %s [-d DEVICE] pages FIRST LAST\n",
		prog, prog);
	exit(2);
}

static uint32_t number(const char *what, const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *s == '\0' || *end != '\0' || v > UINT32_MAX) {
		fprintf(stderr, "%s: %s: not a 32-bit number: '%s'\n", prog, what, s);
		exit(2);
	}
	return (uint32_t)v;
}

static int factorial(int fd, const char *dev, uint32_t n)
{
	uint32_t v = n;

	if (ioctl(fd, EDU_LAB_IOC_FACTORIAL, &v) != 0) {
		fprintf(stderr, "%s: %s: EDU_LAB_IOC_FACTORIAL(%u): %s\n", prog, dev, n,
			strerror(errno));
		return 1;
	}
	printf("%u! = %u\n", n, v);
	return 0;
}

static int pages(int fd, const char *dev, uint32_t first, uint32_t last)
{
	long page_size = sysconf(_SC_PAGESIZE);
	volatile char *scratch;
	uint32_t i, ones = 0, other = 0;

	if (first > last) {
		fprintf(stderr, "%s: pages: FIRST %u is after LAST %u\n", prog, first, last);
		return 2;
	}
	scratch = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED) {
		fprintf(stderr, "%s: mmap of a scratch page: %s\n", prog, strerror(errno));
		return 1;
	}
	for (i = first; i <= last; i++) {
		uint32_t v = i;

		/* Drop the page, then touch it: a page fault, handled inside
		 * the guest, just before the ioctl. */
		if (madvise((void *)scratch, page_size, MADV_DONTNEED) != 0) {
			fprintf(stderr, "%s: madvise(MADV_DONTNEED): %s\n", prog, strerror(errno));
			return 1;
		}
		scratch[0] = (char)i;
		if (ioctl(fd, EDU_LAB_IOC_READ_PAGE, &v) != 0) {
			fprintf(stderr, "%s: %s: EDU_LAB_IOC_READ_PAGE(%u): %s\n", prog, dev, i,
				strerror(errno));
			return 1;
		}
		if (v == UINT32_MAX)
			ones++;
		else
			other++;
	}
	printf("read BAR0 pages %u..%u, each first touched right after a page fault: "
	       "%u all ones, %u other\n", first, last, ones, other);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = "/dev/edu_lab";
	uint32_t a, b = 0;
	int fd, ret, is_pages;

	if (argc >= 3 && strcmp(argv[1], "-d") == 0) {
		dev = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc == 3 && strcmp(argv[1], "factorial") == 0) {
		is_pages = 0;
		a = number("factorial N", argv[2]);
	} else if (argc == 4 && strcmp(argv[1], "pages") == 0) {
		is_pages = 1;
		a = number("pages FIRST", argv[2]);
		b = number("pages LAST", argv[3]);
	} else {
		usage();
	}
	fd = open(dev, O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "%s: open %s: %s\n", prog, dev, strerror(errno));
		return 1;
	}
	ret = is_pages ? pages(fd, dev, a, b) : factorial(fd, dev, a);
	close(fd);
	return ret;
}
