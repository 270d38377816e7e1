# The two commands of the README: `make dev` runs the stack, `make test` runs every check.
.PHONY: dev test
dev:
	./scripts/dev.sh

test:
	./scripts/test.sh
