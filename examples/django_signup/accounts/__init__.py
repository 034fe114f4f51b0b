"""Sign-ups: a user row and its welcome e-mail, committed together or not at all."""
