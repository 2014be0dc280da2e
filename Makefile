# Short names for the scripts; the scripts are the real interface.
.PHONY: setup kernel kernel-debug driver run shell test check clean

setup:
	./scripts/setup
kernel:
	./scripts/build-kernel
kernel-debug:
	./scripts/build-kernel --debug
driver:
	$(MAKE) -C driver
run:
	./scripts/run
shell:
	./scripts/shell
test:
	./scripts/test
check:
	./scripts/test --quick
clean:
	$(MAKE) -C driver clean
	rm -rf build target
