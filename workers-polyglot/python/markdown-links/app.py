"""The markdown-links component: exports the SDK worker in worker.py (componentize-py looks up `Worker`)."""

from alephauto_guest.component import export

from worker import MarkdownLinks

Worker = export(MarkdownLinks)
