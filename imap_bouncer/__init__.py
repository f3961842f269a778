"""imap-bouncer: read a bounce mailbox, tell per recipient what happened and why."""

__version__ = "0.1.0"
