"""billops: the operator's command line (API keys, subscriptions, replays, bulk operations, reconciliation).

Talks to the local stack (``make run``; the default) or a deployed stack (``--stack NAME``): see docs/cli.md.
"""
