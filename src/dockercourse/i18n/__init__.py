"""The course in other languages (issue 18): translation catalogs, the translated notebooks, their check.

The English master notebook (``notebooks/NN_slug.ipynb``) is the one source of truth. A language's text lives
in one catalog per chapter, ``i18n/<lang>/NN_slug.yml``: for each markdown cell of the master, by the cell's
stable id, its translation and the hash of the English source it translates (:mod:`.catalog`).
``dockercourse i18n build`` writes ``notebooks/<lang>/NN_slug.ipynb`` from the master and the catalog:
markdown translated, code cells identical (with their metadata, so release and grading work unchanged);
``dockercourse i18n check`` names every cell whose translation is missing or older than its English source,
and a translated notebook that no longer matches what the build would write (:mod:`.notebooks`).
"""

#: the languages the course has catalogs for, besides English
LANGUAGES = ("zh",)
