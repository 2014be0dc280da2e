/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The edu-rs char device ABI for C programs: ioctl numbers and argument
 * layouts of /dev/eduN (or the lab's `mknod /dev/edu c MAJOR 0`).
 *
 * The definitions are those of abi/src/abi.rs, which the driver compiles;
 * abi/tests/c_header.rs checks every number and layout here against it.
 * docs/ioctl-abi.md describes what each command does.
 *
 *	#include "edu_abi.h"
 *	int fd = open("/dev/edu0", O_RDWR);
 *	__u32 n = 10;
 *	ioctl(fd, EDU_IOC_FACTORIAL, &n);	// n == 3628800
 */
#ifndef EDU_ABI_H
#define EDU_ABI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The ioctl "type" byte of every edu command. */
#define EDU_IOC_MAGIC 'k'

/* Size of the device's DMA buffer, and so of the char device's file. */
#define EDU_BUF_SIZE 4096

/* Lab-compatible commands: no argument; results go to the kernel log. */
#define DMA_READ_CMD		_IO(EDU_IOC_MAGIC, 0x1a)
#define DMA_WRITE_CMD		_IO(EDU_IOC_MAGIC, 0x1b)	/* needs O_WRONLY/O_RDWR */
#define PRINT_EDUINFO_CMD	_IO(EDU_IOC_MAGIC, 0x1c)
#define SEND_INTERRUPT_CMD	_IO(EDU_IOC_MAGIC, 0x1d)
#define FACTORIAL_CMD		_IO(EDU_IOC_MAGIC, 0x1e)

/* edu_info.irq_mode */
#define EDU_IRQ_MODE_INTX 0
#define EDU_IRQ_MODE_MSI 1

/* Interrupt status bits of the device's own events. */
#define EDU_IRQ_FACTORIAL 0x1
#define EDU_IRQ_DMA 0x100

/* Result of EDU_IOC_INFO: 40 bytes, no padding. */
struct edu_info {
	__u32 id;		/* identification register, 0x010000ed on QEMU */
	__u32 irq;		/* Linux IRQ number in use */
	__u32 irq_mode;		/* EDU_IRQ_MODE_INTX or EDU_IRQ_MODE_MSI */
	__u32 minor;		/* this device's minor */
	__u64 bar0_start;	/* physical address of BAR0 */
	__u64 bar0_len;		/* 0x100000 */
	__u64 dma_mask;		/* 0x0fffffff: the device's 28 address bits */
};

/* Argument of EDU_IOC_DMA_TO_DEVICE and EDU_IOC_DMA_FROM_DEVICE: 16 bytes. */
struct edu_dma {
	__u64 user_addr;	/* user buffer */
	__u32 offset;		/* offset into the device's 4 KiB buffer */
	__u32 len;		/* bytes: 1..4096, offset + len <= 4096 */
};

/* Typed commands. */
#define EDU_IOC_INFO		_IOR(EDU_IOC_MAGIC, 0x20, struct edu_info)
#define EDU_IOC_FACTORIAL	_IOWR(EDU_IOC_MAGIC, 0x21, __u32)	/* in n, out n! mod 2^32 */
#define EDU_IOC_LIVENESS	_IOWR(EDU_IOC_MAGIC, 0x22, __u32)	/* in v, out ~v */
#define EDU_IOC_RAISE_IRQ	_IOWR(EDU_IOC_MAGIC, 0x23, __u32)	/* in bits, out bits seen */
#define EDU_IOC_DMA_TO_DEVICE	_IOW(EDU_IOC_MAGIC, 0x24, struct edu_dma)	/* needs O_WRONLY/O_RDWR */
#define EDU_IOC_DMA_FROM_DEVICE	_IOW(EDU_IOC_MAGIC, 0x25, struct edu_dma)

#endif /* EDU_ABI_H */
