"""WHERE clauses built from optional filters: the one way list queries turn filters into SQL.

Column names come from the calling data-access module, never from a client; every value travels
as a parameter. A filter whose value is None is left out.
"""


class Where:
    """AND-ed conditions and their parameters, added one filter at a time."""

    def __init__(self):
        """No condition yet (``sql`` is ``TRUE``)."""
        self.clauses = []
        self.params = []

    def add(self, clause, *params):
        """Add a condition written by the caller (``%s`` for each parameter)."""
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def equal(self, column, value, cast=""):
        """``column = value`` (with an optional SQL cast of the value) unless value is None."""
        if value is not None:
            self.add(f"{column} = %s{cast}", value)
        return self

    def contains(self, column, text):
        """``lower(column)`` contains ``text`` (case-insensitive, ``%`` and ``_`` taken literally)
        unless text is empty or None."""
        if text:
            escaped = text.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            self.add(f"lower({column}) LIKE %s", f"%{escaped}%")
        return self

    def equal_all(self, filters):
        """``equal`` for each (column, value) of a dict, in its order."""
        for column, value in filters.items():
            self.equal(column, value)
        return self

    def at_or_after(self, column, start):
        """``column >= start`` unless start is None."""
        if start is not None:
            self.add(f"{column} >= %s", start)
        return self

    def before(self, column, end, inclusive=True):
        """``column <= end`` (``<`` when not inclusive) unless end is None."""
        if end is not None:
            self.add(f"{column} <= %s" if inclusive else f"{column} < %s", end)
        return self

    def between(self, column, start, end, end_inclusive=True):
        """Both bounds of a range, each when given."""
        return self.at_or_after(column, start).before(column, end, end_inclusive)

    def older_than_cursor(self, cursor):
        """Rows after a newest-first page's last (created_at, id), unless cursor is None."""
        if cursor is not None:
            self.add("(created_at, id) < (%s, %s)", *cursor)
        return self

    @property
    def sql(self):
        """The conditions joined with AND (``TRUE`` when there are none)."""
        return " AND ".join(self.clauses) or "TRUE"
