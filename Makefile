# The two commands of the README: `make dev` runs the stack, `make test` runs every check.
.PHONY: dev test bench soak deploy-check
dev:
	./scripts/dev.sh

test:
	./scripts/test.sh

# The Performance section of the README (not part of `make test`).
bench:
	./scripts/bench.sh

# The 10,000-event soak with faults (make test runs 700 of it).
soak:
	./scripts/soak.sh

# `sam build` from a clean copy of the tree, timed (too long to run beside the rest in make test).
deploy-check:
	./scripts/deploy-check.sh
