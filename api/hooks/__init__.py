"""Release hooks: signed URLs that deploy platforms call to start and finish releases."""
