"""What a finished run shows: the results object (:mod:`.results`), printed tables (:mod:`.display`),
figures (:mod:`.plots`, one kind per module) and the HTML report (:mod:`.report`)."""
