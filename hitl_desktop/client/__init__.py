"""The client library: connect to a host with an invite link, resume and reconnect,
and expose what arrives as Qt signals (QtCore only, no widgets)."""
