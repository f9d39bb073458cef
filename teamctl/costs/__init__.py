"""``teamctl costs``: the spend report, its semantic cache section, and their text."""
