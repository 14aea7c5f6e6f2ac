"""Evidence: where in an article each value is stated. Splits sentences (:mod:`.locate`), finds the
sentence that supports each value, resolves date words, builds the cited record from the model's
reading (:mod:`.cite`), checks support (:mod:`.ground`) and reads who said it (:mod:`.attribute`).
"""
