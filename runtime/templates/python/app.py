"""{{name}}: the component entry; componentize-py instantiates `Worker` (build.sh puts the SDK on its path)."""

from alephauto_guest.component import export

from hello import Hello

Worker = export(Hello)
