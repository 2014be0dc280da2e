// SPDX-License-Identifier: GPL-2.0
/*
 * edu_lab: a C driver for QEMU's edu device (1234:11e8), written the way
 * the lab's students write theirs: probe enables the device, requests its
 * regions, maps BAR0 with pci_iomap and requests the legacy interrupt on
 * pdev->irq, all without touching BAR0. The first BAR0 access happens
 * later, from an ioctl: iowrite32(0x80, bar + 0x20).
 *
 * It exists as a test. In nested runs (docs/pipeline.md) that first access
 * to a fresh MMIO page, made soon after the guest took an exception, used
 * to end the guest with "KVM internal error, suberror 3"; our Rust driver
 * reads BAR0 in probe and had not met it. scripts/test runs this module
 * on every VMM with c-lab-test, next to this file.
 *
 * One device is enough for the test; a second one is refused with -EBUSY.
 */
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "edu_lab.h"

#define EDU_LAB_NAME "edu_lab"

/* BAR0 registers (docs/edu-device.md). */
#define EDU_REG_FACTORIAL 0x08
#define EDU_REG_STATUS 0x20
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_ACK 0x64
/* Status bit 7: raise an interrupt when a factorial completes. */
#define EDU_STATUS_IRQ_FACTORIAL 0x80
/* Interrupt status bit 0: a factorial completed. */
#define EDU_IRQ_FACTORIAL 0x01

#define EDU_LAB_TIMEOUT_MS 2000

struct edu_lab {
	struct pci_dev *pdev;
	void __iomem *bar;
	/* Serialises the ioctls: one factorial at a time. */
	struct mutex lock;
	struct completion factorial_done;
	struct miscdevice misc;
};

static atomic_t edu_lab_bound = ATOMIC_INIT(0);

static irqreturn_t edu_lab_irq(int irq, void *data)
{
	struct edu_lab *lab = data;
	u32 status = ioread32(lab->bar + EDU_REG_IRQ_STATUS);

	/* The line may be shared; all ones is a device that went away. */
	if (status == 0 || status == ~0u)
		return IRQ_NONE;
	iowrite32(status, lab->bar + EDU_REG_IRQ_ACK);
	if (status & EDU_IRQ_FACTORIAL)
		complete(&lab->factorial_done);
	return IRQ_HANDLED;
}

static long edu_lab_factorial(struct edu_lab *lab, u32 *val)
{
	long ret = 0;

	mutex_lock(&lab->lock);
	reinit_completion(&lab->factorial_done);
	iowrite32(EDU_STATUS_IRQ_FACTORIAL, lab->bar + EDU_REG_STATUS);
	iowrite32(*val, lab->bar + EDU_REG_FACTORIAL);
	if (!wait_for_completion_timeout(&lab->factorial_done,
					 msecs_to_jiffies(EDU_LAB_TIMEOUT_MS)))
		ret = -ETIMEDOUT;
	else
		*val = ioread32(lab->bar + EDU_REG_FACTORIAL);
	mutex_unlock(&lab->lock);
	return ret;
}

static long edu_lab_read_page(struct edu_lab *lab, u32 *val)
{
	u32 pages = pci_resource_len(lab->pdev, 0) >> PAGE_SHIFT;

	if (*val >= pages)
		return -EINVAL;
	*val = ioread32(lab->bar + ((unsigned long)*val << PAGE_SHIFT));
	return 0;
}

static long edu_lab_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct edu_lab *lab =
		container_of(file->private_data, struct edu_lab, misc);
	u32 __user *uarg = (u32 __user *)arg;
	u32 val;
	long ret;

	if (get_user(val, uarg))
		return -EFAULT;
	switch (cmd) {
	case EDU_LAB_IOC_FACTORIAL:
		ret = edu_lab_factorial(lab, &val);
		break;
	case EDU_LAB_IOC_READ_PAGE:
		ret = edu_lab_read_page(lab, &val);
		break;
	default:
		return -ENOTTY;
	}
	if (ret)
		return ret;
	return put_user(val, uarg);
}

static const struct file_operations edu_lab_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = edu_lab_ioctl,
};

static int edu_lab_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct edu_lab *lab;
	int ret;

	if (atomic_cmpxchg(&edu_lab_bound, 0, 1))
		return -EBUSY;
	lab = kzalloc(sizeof(*lab), GFP_KERNEL);
	if (!lab) {
		ret = -ENOMEM;
		goto err_unclaim;
	}
	lab->pdev = pdev;
	mutex_init(&lab->lock);
	init_completion(&lab->factorial_done);

	ret = pci_enable_device(pdev);
	if (ret)
		goto err_free;
	ret = pci_request_regions(pdev, EDU_LAB_NAME);
	if (ret)
		goto err_disable;
	lab->bar = pci_iomap(pdev, 0, 0);
	if (!lab->bar) {
		ret = -ENOMEM;
		goto err_release;
	}
	ret = request_irq(pdev->irq, edu_lab_irq, IRQF_SHARED, EDU_LAB_NAME, lab);
	if (ret)
		goto err_unmap;

	lab->misc.minor = MISC_DYNAMIC_MINOR;
	lab->misc.name = EDU_LAB_NAME;
	lab->misc.fops = &edu_lab_fops;
	lab->misc.parent = &pdev->dev;
	ret = misc_register(&lab->misc);
	if (ret)
		goto err_irq;

	pci_set_drvdata(pdev, lab);
	dev_info(&pdev->dev, "edu_lab: bound, irq %d, BAR0 mapped, not read yet\n",
		 pdev->irq);
	return 0;

err_irq:
	free_irq(pdev->irq, lab);
err_unmap:
	pci_iounmap(pdev, lab->bar);
err_release:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_free:
	kfree(lab);
err_unclaim:
	atomic_set(&edu_lab_bound, 0);
	return ret;
}

static void edu_lab_remove(struct pci_dev *pdev)
{
	struct edu_lab *lab = pci_get_drvdata(pdev);

	misc_deregister(&lab->misc);
	free_irq(pdev->irq, lab);
	pci_iounmap(pdev, lab->bar);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	kfree(lab);
	atomic_set(&edu_lab_bound, 0);
}

static const struct pci_device_id edu_lab_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{}
};
MODULE_DEVICE_TABLE(pci, edu_lab_ids);

static struct pci_driver edu_lab_driver = {
	.name = EDU_LAB_NAME,
	.id_table = edu_lab_ids,
	.probe = edu_lab_probe,
	.remove = edu_lab_remove,
};
module_pci_driver(edu_lab_driver);

MODULE_DESCRIPTION("edu device driver written the classic lab way (a nested-KVM regression test)");
MODULE_LICENSE("GPL");
