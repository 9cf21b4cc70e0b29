"""A tiny reference in-guest agent: reports session events of a desktop to the deskpool API."""
