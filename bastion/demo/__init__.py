"""`bastion demo`: a complete bastion in one process, with an embedded demo target and a scripted walkthrough."""
