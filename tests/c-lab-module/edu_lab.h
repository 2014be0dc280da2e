/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ioctls of edu_lab.ko (/dev/edu_lab), shared by the module and the
 * guest program edu-lab-ioctl.c.
 */
#ifndef EDU_LAB_H
#define EDU_LAB_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define EDU_LAB_IOC_MAGIC 'l'

/*
 * In: n. Out: n! mod 2^32, computed by the device and collected from its
 * factorial interrupt. Enables that interrupt first: the lab's first BAR0
 * access, iowrite32(0x80, bar + 0x20).
 */
#define EDU_LAB_IOC_FACTORIAL _IOWR(EDU_LAB_IOC_MAGIC, 1, __u32)

/*
 * In: a page index into BAR0 (1 MiB: 0..255). Out: the 32-bit word at the
 * start of that page (the identification register on page 0, all ones on
 * pages without registers).
 */
#define EDU_LAB_IOC_READ_PAGE _IOWR(EDU_LAB_IOC_MAGIC, 2, __u32)

#endif /* EDU_LAB_H */
