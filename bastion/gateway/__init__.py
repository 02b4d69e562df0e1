"""The asyncssh edge: authentication hooks, session relay, upstream connections, admin subcommands."""
