"""Tiny helpers to write a master notebook from a Python script (for authors).

    from nbbuild import Book
    b = Book("02")
    b.md("# 02 · Core concepts ...")
    b.code("client.version()")
    b.exercise("02.hello", task="...", solution="...")
    b.save("notebooks/02_core_concepts.ipynb")

Then execute it in place with tools/execute.py. The notebook (not the script) is
the master copy; the script is only a convenient way to write the first version.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


class Book:
    def __init__(self, chapter: str, title: str = ""):
        self.chapter = chapter
        self.nb = new_notebook()
        self.nb.metadata.update(
            {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
                "dockercourse": {"chapter": chapter},
            }
        )
        if title:
            self.nb.metadata["title"] = title

    def md(self, text: str, **meta):
        c = new_markdown_cell(text.strip("\n"))
        c.metadata.update(meta)
        self.nb.cells.append(c)
        return c

    def code(self, src: str, tags: list[str] | None = None, **meta):
        c = new_code_cell(src.strip("\n"))
        if tags:
            c.metadata["tags"] = tags
        c.metadata.update(meta)
        self.nb.cells.append(c)
        return c

    def exercise(self, ex_id: str, task: str, solution: str, answer: str = "# your answer here"):
        """Task (markdown), empty answer cell, collapsed solution cell, check cell."""
        meta = lambda part: {"dockercourse": {"exercise": ex_id, "part": part}}  # noqa: E731
        self.md(task, **meta("task"))
        self.code(answer, **meta("answer"))
        sol = self.code(solution, **meta("solution"))
        sol.metadata["jupyter"] = {"source_hidden": True}
        self.code(f'check("{ex_id}")', **meta("check"))

    def save(self, path: str):
        nbformat.validate(self.nb)
        nbformat.write(self.nb, path)
