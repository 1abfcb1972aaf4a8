"""Grid constraints written as text, parsed and never evaluated.

``"exit_threshold < entry_threshold and fast_window * 2 <= slow_window"`` is
parsed with :mod:`ast` and walked node by node over the grid's columns (one
NumPy operation per node). Only parameter names, numbers, arithmetic,
comparisons, ``and``/``or``/``not`` (and ``&``/``|``/``~``) and the functions
``abs``/``min``/``max`` are accepted: a string from a file or a command line
can describe rows to keep, never run code. Anything else is refused, naming
the offending piece.
"""
from __future__ import annotations

import ast
import operator

import numpy as np

_ARITHMETIC = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
               ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod,
               ast.Pow: np.power}
_COMPARISONS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
                ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_LOGICAL = {ast.BitAnd: np.logical_and, ast.BitOr: np.logical_or}
_FUNCTIONS = {"abs": lambda *args: np.abs(*args),
              "min": lambda *args: np.minimum.reduce(np.broadcast_arrays(*args)),
              "max": lambda *args: np.maximum.reduce(np.broadcast_arrays(*args))}
_ALLOWED = ("parameter names, numbers, + - * / // % **, comparisons (< <= > >= == !=), "
            "and/or/not (or & | ~), abs(), min() and max()")
#: longest expression accepted (a constraint is one line, not a program)
MAX_LENGTH = 2_000


class ConstraintError(ValueError):
    """A constraint string that cannot be parsed or uses something not allowed."""


def evaluate_constraint(text: str, columns: dict) -> np.ndarray:
    """Rows of ``columns`` (name -> float64 array) for which ``text`` holds.

    Raises
    ------
    ConstraintError
        Syntax errors, names that are not parameters, and any construct outside
        the allowed set (attribute access, calls of other functions, strings,
        subscripts, lambdas, ...), each named in the message.
    """
    if len(text) > MAX_LENGTH:
        raise ConstraintError(f"constraint is {len(text):,} characters long; at most "
                              f"{MAX_LENGTH:,} are accepted (pass a function for more)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ConstraintError(f"cannot parse constraint {text!r}: {err.msg}") from None
    walker = _Walker(text, columns)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(walker.visit(tree.body))


class _Walker:
    def __init__(self, text: str, columns: dict):
        self.text = text
        self.columns = columns

    def refuse(self, node, what: str):
        piece = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        raise ConstraintError(f"constraint {self.text!r}: {what} {piece!r} is not allowed; a "
                              f"constraint may use {_ALLOWED} (pass a function of the "
                              "columns for anything else)")

    def visit(self, node):
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            self.refuse(node, "the expression")
        return method(node)

    def visit_Name(self, node):
        try:
            return self.columns[node.id]
        except KeyError:
            raise ConstraintError(f"cannot evaluate constraint {self.text!r}: {node.id!r} is "
                                  f"not a parameter of the grid (its parameters are "
                                  f"{sorted(self.columns)})") from None

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.refuse(node, "the literal")
        return np.float64(node.value)  # float: 10**10**10 overflows to inf, not a bignum

    def visit_BinOp(self, node):
        function = _ARITHMETIC.get(type(node.op)) or _LOGICAL.get(type(node.op))
        if function is None:
            self.refuse(node, "the operator in")
        return function(self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node):
        operand = self.visit(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return np.logical_not(operand)
        if isinstance(node.op, ast.USub):
            return np.negative(operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        self.refuse(node, "the operator in")

    def visit_BoolOp(self, node):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = self.visit(node.values[0])
        for value in node.values[1:]:
            result = combine(result, self.visit(value))
        return result

    def visit_Compare(self, node):
        left = self.visit(node.left)
        result = None
        for op, comparator in zip(node.ops, node.comparators):
            compare = _COMPARISONS.get(type(op))
            if compare is None:
                self.refuse(node, "the comparison in")
            right = self.visit(comparator)
            step = compare(left, right)
            result = step if result is None else np.logical_and(result, step)
            left = right
        return result

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            self.refuse(node.func, "the call of")
        if node.keywords or not node.args or (node.func.id == "abs" and len(node.args) != 1):
            self.refuse(node, "the call")
        return _FUNCTIONS[node.func.id](*(self.visit(arg) for arg in node.args))
