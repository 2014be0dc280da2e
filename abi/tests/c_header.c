/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Prints every number and layout of include/edu_abi.h, one "NAME VALUE"
 * line each; tests/c_header.rs compiles this against the header and
 * compares the lines with the Rust definitions of abi.rs.
 */
#include <stddef.h>
#include <stdio.h>

#include "edu_abi.h"

#define NUM(x) printf("%s %llu\n", #x, (unsigned long long)(x))
#define SIZE(s) printf("sizeof(%s) %zu\n", #s, sizeof(struct s))
#define FIELD(s, f) printf("offsetof(%s.%s) %zu\n", #s, #f, offsetof(struct s, f))

int main(void)
{
	NUM(EDU_IOC_MAGIC);
	NUM(EDU_BUF_SIZE);
	NUM(DMA_READ_CMD);
	NUM(DMA_WRITE_CMD);
	NUM(PRINT_EDUINFO_CMD);
	NUM(SEND_INTERRUPT_CMD);
	NUM(FACTORIAL_CMD);
	NUM(EDU_IOC_INFO);
	NUM(EDU_IOC_FACTORIAL);
	NUM(EDU_IOC_LIVENESS);
	NUM(EDU_IOC_RAISE_IRQ);
	NUM(EDU_IOC_DMA_TO_DEVICE);
	NUM(EDU_IOC_DMA_FROM_DEVICE);
	NUM(EDU_IRQ_MODE_INTX);
	NUM(EDU_IRQ_MODE_MSI);
	NUM(EDU_IRQ_FACTORIAL);
	NUM(EDU_IRQ_DMA);

	SIZE(edu_info);
	FIELD(edu_info, id);
	FIELD(edu_info, irq);
	FIELD(edu_info, irq_mode);
	FIELD(edu_info, minor);
	FIELD(edu_info, bar0_start);
	FIELD(edu_info, bar0_len);
	FIELD(edu_info, dma_mask);

	SIZE(edu_dma);
	FIELD(edu_dma, user_addr);
	FIELD(edu_dma, offset);
	FIELD(edu_dma, len);
	return 0;
}
