# The builds scripts/bench.sh needs, as jobs of one GNU make (`make -j<cores>`), so cargo and
# rustc share make's job slots instead of each cargo running its own. The host build starts
# at once; the effectum peer beside it, then the guest components. `+` passes the jobserver
# to the recipe.
.PHONY: all host effectum guests
all: host effectum guests

host:
	+@scripts/bench.sh --step=host

effectum:
	+@scripts/bench.sh --step=effectum

guests: effectum
	+@scripts/bench.sh --step=guests
