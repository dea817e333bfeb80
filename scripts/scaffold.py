"""`dev.py new`: writes a resource slice (model, migration, schemas, repository, router, factory,
tests) and registers its router. Standard library only; templates are string.Template text."""

# The templates are code as written out, line lengths and all; ruff formats what they become.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import keyword
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
FIELD = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*):(?P<kind>int|str|bool)(\[(?P<lo>-?\d+)\.\.(?P<hi>-?\d+)\])?$"
)
INT_RANGE = (-(2**31), 2**31 - 1)
RESERVED = {"id", "created_at", "updated_at"}
API_FILE = Path("app/api/api_v1/api.py")


class ScaffoldError(Exception):
    """A request the scaffold refuses, with the reason to show."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    lo: int | None = None
    hi: int | None = None

    @property
    def alias(self) -> str:
        return camel(self.name) + "Value"

    def example(self) -> object:
        if self.kind == "bool":
            return True
        assert self.lo is not None
        assert self.hi is not None
        if self.kind == "int":
            return max(self.lo, min(1, self.hi))
        text = f"A {self.name.replace('_', ' ')}"[: self.hi]
        return text + "x" * (self.lo - len(text))

    def invalid(self) -> str:
        """Source of a value the schema must refuse with a 422."""
        if self.kind == "bool":
            return "[True]"
        assert self.hi is not None
        return str(self.hi + 1) if self.kind == "int" else f'"x" * {self.hi + 1}'

    def column(self) -> str:
        kind = {"int": "Integer()", "bool": "Boolean()", "str": f"String({self.hi})"}[self.kind]
        return f"mapped_column({kind})"

    def migration_type(self) -> str:
        return {"int": "sa.Integer()", "bool": "sa.Boolean()"}.get(
            self.kind, f"sa.String(length={self.hi})"
        )

    def python_type(self) -> str:
        return self.kind

    def schema_type(self) -> str:
        example = repr(self.example())
        if self.kind == "int":
            return f"Annotated[int, Field(ge={self.lo}, le={self.hi}, examples=[{example}])]"
        if self.kind == "bool":
            return f"Annotated[bool, Field(examples=[{example}])]"
        return (
            "Annotated[str, StringConstraints(strip_whitespace=True, "
            f"min_length={self.lo}, max_length={self.hi}), AfterValidator(storable), "
            f"Field(examples=[{example}])]"
        )


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def parse_fields(spec: str) -> list[Field]:
    fields: list[Field] = []
    for item in spec.split():
        match = FIELD.match(item)
        if match is None:
            raise ScaffoldError(
                f"bad field {item!r}: write name:type or name:type[min..max], with type one of "
                "int, str, bool (for example rating:int[1..5] comment:str[1..2000])"
            )
        name, kind = match["name"], match["kind"]
        lo = int(match["lo"]) if match["lo"] is not None else None
        hi = int(match["hi"]) if match["hi"] is not None else None
        if name in RESERVED or keyword.iskeyword(name) or name.endswith("_id"):
            raise ScaffoldError(f"bad field {item!r}: {name!r} is reserved or names a key")
        if kind == "bool" and lo is not None:
            raise ScaffoldError(f"bad field {item!r}: a bool takes no range")
        if kind == "int":
            lo, hi = INT_RANGE if lo is None else (lo, hi)
            assert lo is not None
            assert hi is not None
            if not INT_RANGE[0] <= lo <= hi <= INT_RANGE[1]:
                raise ScaffoldError(
                    f"bad field {item!r}: the range must be min <= max within int32"
                )
        if kind == "str":
            lo, hi = (1, 256) if lo is None else (lo, hi)
            assert lo is not None
            assert hi is not None
            if not 0 <= lo <= hi or hi < 1 or hi > 10_000:
                raise ScaffoldError(f"bad field {item!r}: lengths must be 0 <= min <= max <= 10000")
        if any(f.name == name for f in fields):
            raise ScaffoldError(f"bad field {item!r}: {name!r} appears twice")
        fields.append(Field(name, kind, lo, hi))
    if not fields:
        raise ScaffoldError("--fields names no field")
    return fields


@dataclass(frozen=True)
class Plan:
    root: Path
    name: str
    fields: list[Field]
    owner: str
    parent: str | None

    @property
    def cls(self) -> str:
        return camel(self.name)

    @property
    def plural(self) -> str:
        return self.name + ("es" if self.name.endswith(("s", "x", "ch", "sh")) else "s")

    @property
    def owner_col(self) -> str:
        return f"{self.owner}_id"

    @property
    def parent_col(self) -> str:
        return f"{self.parent}_id"


def _revisions(root: Path) -> tuple[str, int]:
    """The head revision and the next free number, read from the migration files."""
    revisions: dict[str, str | None] = {}
    for path in (root / "alembic/versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r'^revision: str = "([^"]+)"', text, re.M)
        down = re.search(r'^down_revision: str \| None = (?:"([^"]+)"|None)', text, re.M)
        if rev is None or down is None:
            raise ScaffoldError(f"{path}: cannot read its revision and down_revision")
        revisions[rev[1]] = down[1]
    heads = set(revisions) - set(revisions.values())
    if len(heads) != 1:
        raise ScaffoldError(f"the migrations must have one head, not {sorted(heads)}")
    numbers = [int(r) for r in revisions if r.isdigit()]
    return heads.pop(), max(numbers, default=0) + 1


def _owner_column(root: Path, resource: str) -> str | None:
    """The column of the parent's model that points at its owning user, if it has one."""
    text = (root / f"app/models/{resource}.py").read_text(encoding="utf-8")
    found = re.search(
        r'^\s+(\w+): Mapped\[int\] = mapped_column\(\s*ForeignKey\("user\.id"', text, re.M
    )
    return found[1] if found else None


def check(plan: Plan) -> None:
    root = plan.root
    if not NAME.match(plan.name) or keyword.iskeyword(plan.name):
        raise ScaffoldError(f"bad resource name {plan.name!r}: use lower_snake_case, singular")
    if not NAME.match(plan.owner):
        raise ScaffoldError(f"bad owner name {plan.owner!r}: use lower_snake_case")
    taken = [
        p
        for p in (
            f"app/models/{plan.name}.py",
            f"app/schemas/{plan.name}.py",
            f"app/crud/crud_{plan.name}.py",
            f"app/api/api_v1/endpoints/{plan.name}.py",
            f"tests/utils/{plan.name}.py",
        )
        if (root / p).exists()
    ]
    if taken or plan.name in {"user", "token", "base", "auth"}:
        raise ScaffoldError(f"{plan.name!r} exists already ({', '.join(taken) or 'core name'})")
    if plan.parent is not None and not (root / f"app/models/{plan.parent}.py").exists():
        raise ScaffoldError(f"no parent resource {plan.parent!r} (app/models/{plan.parent}.py)")
    if plan.parent == plan.owner or plan.owner in {f.name for f in plan.fields}:
        raise ScaffoldError(f"the owner {plan.owner!r} clashes with another name")
    if plan.parent is not None and plan.parent in {f.name for f in plan.fields}:
        raise ScaffoldError(f"the parent {plan.parent!r} clashes with a field")


def _lines(items: list[str], indent: int) -> str:
    pad = " " * indent
    return "\n".join(pad + item for item in items)


def render(plan: Plan) -> dict[Path, str]:
    """Every file the scaffold writes, by path, and the registration edit of api.py."""
    head, number = _revisions(plan.root)
    revision = f"{number:04d}"
    parent_owner = _owner_column(plan.root, plan.parent) if plan.parent else None
    f = plan.fields
    v: dict[str, str] = {
        "name": plan.name,
        "Name": plan.cls,
        "names": plan.plural,
        "owner": plan.owner_col,
        "OWNER": plan.owner_col.upper(),
        "owner_word": plan.owner.replace("_", " "),
        "revision": revision,
        "head": head,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "model_columns": _lines(
            [f"{x.name}: Mapped[{x.python_type()}] = {x.column()}" for x in f], 4
        ),
        "migration_columns": _lines(
            [f'sa.Column("{x.name}", {x.migration_type()}, nullable=False),' for x in f], 8
        ),
        "aliases": "\n".join(f"{x.alias} = {x.schema_type()}" for x in f),
        "create_fields": _lines([f"{x.name}: {x.alias}" for x in f], 4),
        "update_fields": _lines([f"{x.name}: {x.alias} | None = None" for x in f], 4),
        "read_fields": _lines([f"{x.name}: {x.python_type()}" for x in f], 4),
        "example": "{" + ", ".join(f'"{x.name}": {x.example()!r}' for x in f) + "}",
        "changed": "{" + f'"{f[0].name}": {_changed(f[0])!r}' + "}",
        "first": f[0].name,
        "invalid": "[" + ", ".join(f'("{x.name}", {x.invalid()})' for x in f) + "]",
        "sa_imports": ", ".join(
            sorted({"ForeignKey", "Index"} | {x.column().split("(", 1)[1].split("(")[0] for x in f})
        ),
        "pydantic_imports": ", ".join(
            sorted(
                {"Field"}
                | (
                    {"AfterValidator", "StringConstraints"}
                    if any(x.kind == "str" for x in f)
                    else set()
                )
            )
        ),
        "storable_import": (
            "from app.schemas.common import Page, ReadModel, UpdateModel, WriteModel, storable"
            if any(x.kind == "str" for x in f)
            else "from app.schemas.common import Page, ReadModel, UpdateModel, WriteModel"
        ),
    }
    parent = plan.parent
    if parent is None:
        v |= {
            "parent_index": "",
            "parent_column": "",
            "parent_migration_column": "",
            "parent_fk": "",
            "parent_migration_index": "",
            "parent_migration_drop": "",
            "parent_create_field": "",
            "parent_read_field": "",
            "parent_statement": "",
            "parent_repo_method": "",
            "parent_imports": "",
            "parent_error": "",
            "parent_check": "",
            "parent_errors": "",
            "list_filter": "",
            "list_body": f"    return await {plan.plural}.paginate(db, page)",
            "factory_parent_import": "",
            "factory_parent_param": "",
            "factory_parent_make": "",
            "factory_parent_kw": "",
            "test_parent": "",
            "test_parent_import": "",
            "test_body_parent": "",
            "test_list_parent": "",
        }
    else:
        pv = {
            "parent": parent,
            "Parent": camel(parent),
            "parent_col": plan.parent_col,
            "PARENT_COL": plan.parent_col.upper(),
            **v,
        }
        owner_kw = f"{parent_owner}=owner_id" if parent_owner else ""
        v |= {
            k: Template(t).safe_substitute(pv)
            for k, t in {
                "parent_index": '        Index("ix_${name}_${parent_col}_id", "${parent_col}", "id"),\n',
                "parent_column": '    ${parent_col}: Mapped[int] = mapped_column(ForeignKey("${parent}.id", ondelete="CASCADE"))\n',
                "parent_migration_column": '        sa.Column("${parent_col}", sa.Integer(), nullable=False),\n',
                "parent_fk": (
                    "        sa.ForeignKeyConstraint(\n"
                    '            ["${parent_col}"],\n'
                    '            ["${parent}.id"],\n'
                    '            name=op.f("fk_${name}_${parent_col}_${parent}"),\n'
                    '            ondelete="CASCADE",\n'
                    "        ),\n"
                ),
                "parent_migration_index": (
                    '        batch_op.create_index("ix_${name}_${parent_col}_id", ["${parent_col}", "id"], unique=False)\n'
                ),
                "parent_migration_drop": '        batch_op.drop_index("ix_${name}_${parent_col}_id")\n',
                "parent_create_field": (
                    "    ${parent_col}: Annotated[int, Field(ge=1, le=2**31 - 1, examples=[1], "
                    'description="The ${parent} it belongs to; fixed once created.")]\n'
                ),
                "parent_read_field": "    ${parent_col}: int\n",
                "parent_statement": (
                    "BY_${PARENT_COL} = select(${Name}).where(\n"
                    '    ${Name}.${parent_col} == bindparam("${parent_col}")\n'
                    ")\n"
                ),
                "parent_repo_method": (
                    "\n    async def paginate_by_${parent}(\n"
                    "        self, db: Reader, page: PageParams, *, ${parent_col}: int\n"
                    "    ) -> Page[${Name}]:\n"
                    "        return await self.paginate(\n"
                    "            db, page, BY_${PARENT_COL}, ${parent_col}=${parent_col}\n"
                    "        )\n"
                ),
                "parent_imports": (
                    "from app.crud.crud_${parent} import ${parent} as ${parent}_rows\n"
                ),
                "parent_error": (
                    "\n\nclass ${Name}${Parent}NotFound(NotFound):\n"
                    '    message = "${Parent} not found"\n'
                ),
                "parent_check": (
                    "    if await ${parent}_rows.get(db, ${name}_in.${parent_col}) is None:\n"
                    "        raise ${Name}${Parent}NotFound\n"
                ),
                "parent_errors": ", ${Name}${Parent}NotFound",
                "list_filter": (
                    "    ${parent_col}: Annotated[\n"
                    '        int | None, Query(ge=1, le=MAX_ID, description="Only this ${parent}\'s ${names}.")\n'
                    "    ] = None,\n"
                ),
                "list_body": (
                    "    if ${parent_col} is None:\n"
                    "        return await ${names}.paginate(db, page)\n"
                    "    return await ${names}.paginate_by_${parent}(\n"
                    "        db, page, ${parent_col}=${parent_col}\n"
                    "    )"
                ),
                "factory_parent_import": (
                    "from tests.utils.${parent} import create_random_${parent}\n"
                ),
                "factory_parent_param": ", ${parent_col}: int | None = None",
                "factory_parent_make": (
                    "    if ${parent_col} is None:\n"
                    "        ${parent_col} = await new_${parent}_id(db, owner_id=${owner})\n"
                ),
                "factory_parent_kw": ", ${parent_col}=${parent_col}",
                "test_parent": TEST_PARENT,
                "test_parent_import": (
                    "from app.models.${parent} import ${Parent}\n"
                    "from tests.utils.${name} import new_${parent}_id\n"
                ),
                "test_body_parent": ', "${parent_col}": await new_${parent}_id(db, owner_id=owner_id)',
                "test_list_parent": (
                    '    mine = await client.get(${NAME_UPPER}, params={"${parent_col}": body["${parent_col}"]})\n'
                    '    assert [r["id"] for r in mine.json()["items"]] == [created["id"]]\n'
                ),
            }.items()
        }
        v["factory_parent_helper"] = Template(FACTORY_PARENT).substitute(pv, owner_kw=owner_kw)
        v["body_noqa"] = ""
    v.setdefault("factory_parent_helper", "")
    v.setdefault("body_noqa", "  # noqa: ARG001 - the same signature with a parent uses both")
    v["Names_title"] = plan.plural.replace("_", " ").capitalize()
    v["NAME_UPPER"] = plan.plural.upper()
    # Second pass: the parent snippets refer to NAME_UPPER.
    v = {k: Template(s).safe_substitute(v) for k, s in v.items()}
    files = {
        Path(f"app/models/{plan.name}.py"): MODEL,
        Path(f"alembic/versions/{revision}_create_{plan.name}_table.py"): MIGRATION,
        Path(f"app/schemas/{plan.name}.py"): SCHEMAS,
        Path(f"app/crud/crud_{plan.name}.py"): REPOSITORY,
        Path(f"app/api/api_v1/endpoints/{plan.name}.py"): ROUTER,
        Path(f"tests/utils/{plan.name}.py"): FACTORY,
        Path(f"tests/api/api_v1/test_{plan.name}.py"): TESTS,
    }
    written = {path: Template(text).substitute(v) for path, text in files.items()}
    written[API_FILE] = register(plan.root / API_FILE, plan.name)
    return written


def _changed(field: Field) -> object:
    if field.kind == "int":
        assert field.lo is not None
        assert field.hi is not None
        return field.hi if field.example() != field.hi else field.lo
    if field.kind == "bool":
        return False
    assert field.hi is not None
    assert field.lo is not None
    return ("Changed" * 10)[: field.hi] if field.hi >= max(field.lo, 1) else ""


def register(api: Path, name: str) -> str:
    """api.py with the new module imported and its router included (last)."""
    text = api.read_text(encoding="utf-8")
    importing = re.search(r"^from app\.api\.api_v1\.endpoints import (\([^)]*\)|.+)$", text, re.M)
    if importing is None:
        raise ScaffoldError(f"{api}: no `from app.api.api_v1.endpoints import ...` line")
    listed = importing[1].strip("()").replace("\n", " ").split(",")
    modules = sorted({*(m.strip() for m in listed if m.strip()), name})
    text = text.replace(importing[0], f"from app.api.api_v1.endpoints import {', '.join(modules)}")
    return text.rstrip("\n") + f"\napi_router.include_router({name}.router)\n"


def new(root: Path, argv: list[str]) -> list[Path]:
    parser = argparse.ArgumentParser(
        prog="python3 scripts/dev.py new",
        description="Write a resource slice: model, migration, schemas, repository, router, "
        "factory and tests, and register the router.",
    )
    parser.add_argument("resource", help="singular lower_snake_case name, e.g. review")
    parser.add_argument(
        "--fields",
        required=True,
        help='e.g. "rating:int[1..5] comment:str[1..2000] public:bool"; str defaults to '
        "[1..256], int to the int32 range",
    )
    parser.add_argument(
        "--owner", default="owner", help="the owning user's column, less _id (default: owner)"
    )
    parser.add_argument("--parent", help="a resource each row belongs to; deleting it cascades")
    args = parser.parse_args(argv)
    plan = Plan(root, args.resource, parse_fields(args.fields), args.owner, args.parent)
    check(plan)
    written = render(plan)
    for path, text in written.items():
        (root / path).write_text(text, encoding="utf-8")
    return list(written)


def tidy(root: Path, paths: list[Path], ruff: Path) -> None:
    """Sort imports and format what was written, as `dev.py format` would."""
    if not ruff.exists():
        return
    files = [str(p) for p in paths]
    subprocess.run([str(ruff), "format", "-q", *files], cwd=root, check=True)
    subprocess.run([str(ruff), "check", "--fix", "-q", *files], cwd=root, check=True)
    subprocess.run([str(ruff), "format", "-q", *files], cwd=root, check=True)


MODEL = '''"""The ${Name} table."""

from sqlalchemy import ${sa_imports}
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base_class import Base, TimestampMixin


class ${Name}(TimestampMixin, Base):
    __tablename__ = "${name}"
    __table_args__ = (
        # Serve the foreign keys and the keyset-paged listings by owner (and parent).
        Index("ix_${name}_${owner}_id", "${owner}", "id"),
${parent_index}        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
${model_columns}
    # The database removes the rows of a deleted ${owner_word} (ON DELETE CASCADE).
    ${owner}: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
${parent_column}'''

MIGRATION = '''"""create ${name} table

Revision ID: ${revision}
Revises: ${head}
Create Date: ${date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "${revision}"
down_revision: str | None = "${head}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "${name}",
        sa.Column("id", sa.Integer(), nullable=False),
${migration_columns}
        sa.Column("${owner}", sa.Integer(), nullable=False),
${parent_migration_column}        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["${owner}"],
            ["user.id"],
            name=op.f("fk_${name}_${owner}_user"),
            ondelete="CASCADE",
        ),
${parent_fk}        sa.PrimaryKeyConstraint("id", name=op.f("pk_${name}")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("${name}") as batch_op:
        batch_op.create_index("ix_${name}_${owner}_id", ["${owner}", "id"], unique=False)
${parent_migration_index}

def downgrade() -> None:
    with op.batch_alter_table("${name}") as batch_op:
${parent_migration_drop}        batch_op.drop_index("ix_${name}_${owner}_id")
    op.drop_table("${name}")
'''

SCHEMAS = '''"""${Name} request and response bodies."""

from datetime import datetime
from typing import Annotated

from pydantic import ${pydantic_imports}

${storable_import}

${aliases}


class ${Name}Create(WriteModel):
${create_fields}
${parent_create_field}

class ${Name}Update(UpdateModel):
    """Partial update: send only the fields to change. null is not a value for any of them."""

${update_fields}


class ${Name}Read(ReadModel):
    id: int
${read_fields}
    ${owner}: int
${parent_read_field}    created_at: datetime
    updated_at: datetime


${Name}Page = Page[${Name}Read]
'''

REPOSITORY = '''"""${Name} data access. No HTTP here."""

from sqlalchemy import bindparam, select

from app.crud.base import Repository
from app.crud.pagination import Page, PageParams
from app.db.session import Reader
from app.models.${name} import ${Name}

# Built once, with bind parameters for what varies, so each compiles once.
BY_${OWNER} = select(${Name}).where(${Name}.${owner} == bindparam("${owner}"))
${parent_statement}

class ${Name}Repository(Repository[${Name}]):
    async def paginate_by_${owner}(
        self, db: Reader, page: PageParams, *, ${owner}: int
    ) -> Page[${Name}]:
        return await self.paginate(db, page, BY_${OWNER}, ${owner}=${owner})
${parent_repo_method}

${name} = ${Name}Repository(${Name})
'''

ROUTER = '''"""${Names_title}: public reads; writes by their owner (or a superuser)."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.cache_policy import public_cache
from app.api.deps import (
    Caller,
    PageDep,
    ReadSessionDep,
    SessionDep,
    owned,
    path_id,
    scoped_user,
)
from app.api.idempotency import idempotent
from app.api.responses import errors
from app.core.config import settings
${parent_imports}from app.crud.crud_${name} import ${name} as ${names}
from app.crud.pagination import MAX_ID, Page
from app.models.${name} import ${Name}
from app.models.user import User
from app.schemas.${name} import ${Name}Create, ${Name}Page, ${Name}Read, ${Name}Update
from app.services.errors import IdempotencyKeyInFlight, NotFound


class ${Name}NotFound(NotFound):
    message = "${Name} not found"
${parent_error}

${Name}Id = Annotated[int, path_id("${name}")]
# Logged in with a token that may write these.
${Name}Writer = Annotated[User, scoped_user("${names}:write", "Add, edit and delete your ${names}.")]
Owned${Name} = Annotated[
    ${Name},
    owned(
        ${names},
        id_param="${name}_id",
        id_type=${Name}Id,
        caller=${Name}Writer,
        not_found=${Name}NotFound,
        owner_attr="${owner}",
    ),
]

${names}_router = APIRouter(prefix="/${names}", tags=["${names}"])
# Anonymous reads are the same for everyone, so shared caches may keep them.
public = public_cache(lambda: settings.PUBLIC_CACHE_SECONDS)


@${names}_router.get("", response_model=${Name}Page)
@public
async def read_${names}(
    db: ReadSessionDep,
    page: PageDep,
${list_filter}    ${owner}: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this user's ${names}.")
    ] = None,
) -> Page[${Name}]:
    """Newest first, one cursor page at a time."""
    if ${owner} is not None:
        return await ${names}.paginate_by_${owner}(db, page, ${owner}=${owner})
${list_body}


@${names}_router.get("/{${name}_id}", responses=errors(${Name}NotFound))
@public
async def read_${name}(db: ReadSessionDep, ${name}_id: ${Name}Id) -> ${Name}Read:
    """One by id."""
    ${name} = await ${names}.get(db, ${name}_id)
    if ${name} is None:
        raise ${Name}NotFound
    return ${Name}Read.model_validate(${name})


@${names}_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 403${parent_errors}, IdempotencyKeyInFlight, 413),
)
@idempotent
async def create_${name}(
    db: SessionDep, user: ${Name}Writer, ${name}_in: ${Name}Create
) -> ${Name}Read:
    """Add one; the caller owns it. With an Idempotency-Key, a retry gets the first answer."""
${parent_check}    ${name} = await ${names}.insert(db, {**${name}_in.model_dump(), "${owner}": user.id})
    return ${Name}Read.model_validate(${name})


# Owned${Name} reads the path id, which ruff's FAST003 cannot see.
@${names}_router.patch(
    "/{${name}_id}",  # noqa: FAST003
    responses=errors(401, 403, ${Name}NotFound, 413),
)
async def update_${name}(
    db: SessionDep, ${name}: Owned${Name}, ${name}_in: ${Name}Update
) -> ${Name}Read:
    """Change some fields of one you own."""
    updated = await ${names}.update(db, ${name}, ${name}_in.model_dump(exclude_unset=True))
    if updated is None:
        raise ${Name}NotFound  # deleted meanwhile
    return ${Name}Read.model_validate(updated)


@${names}_router.delete(
    "/{${name}_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, ${Name}NotFound),
)
async def delete_${name}(db: SessionDep, ${name}: Owned${Name}) -> None:
    """Delete one you own."""
    if not await ${names}.remove(db, ${name}):
        raise ${Name}NotFound  # a concurrent delete won


my_router = APIRouter(prefix="/users/me", tags=["users"])


@my_router.get("/${names}", responses=errors(401), response_model=${Name}Page)
async def read_my_${names}(db: ReadSessionDep, user: Caller, page: PageDep) -> Page[${Name}]:
    """The ones you own, newest first."""
    return await ${names}.paginate_by_${owner}(db, page, ${owner}=user.id)


router = APIRouter()
router.include_router(${names}_router)
router.include_router(my_router)
'''

FACTORY = '''"""${Name} factories."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.crud_${name} import ${name} as ${names}
from app.models.${name} import ${Name}
${factory_parent_import}
EXAMPLE = ${example}
${factory_parent_helper}

async def create_random_${name}(
    db: AsyncSession, *, ${owner}: int${factory_parent_param}
) -> ${Name}:
${factory_parent_make}    return await ${names}.add(db, ${Name}(**EXAMPLE, ${owner}=${owner}${factory_parent_kw}))
'''

FACTORY_PARENT = '''

async def new_${parent}_id(db: AsyncSession, *, owner_id: int) -> int:
    """A new ${parent} to hang ${names} on."""
    return (await create_random_${parent}(db, ${owner_kw})).id
'''

TEST_PARENT = """

async def test_deleting_the_${parent}_deletes_its_${names}(
    db: AsyncSession, normal_user: User
) -> None:
    ${name} = await create_random_${name}(db, ${owner}=normal_user.id)
    await db.execute(delete(${Parent}).where(${Parent}.id == ${name}.${parent_col}))
    assert await _exists(db, ${name}.id) is False


async def test_create_${name}_for_a_missing_${parent}_is_404(
    client: httpx2.AsyncClient, normal_user: User
) -> None:
    body = {**EXAMPLE, "${parent_col}": MAX_ID}
    response = await client.post(${NAME_UPPER}, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 404
"""

TESTS = '''"""${Name} endpoints: reads, owner-only writes, 401/403/404/422, cascades."""

from typing import Any

import httpx2
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.pagination import MAX_ID
from app.models import User
from app.models.${name} import ${Name}
${test_parent_import}from tests.utils.${name} import EXAMPLE, create_random_${name}
from tests.utils.user import create_random_user
from tests.utils.utils import auth_headers

${NAME_UPPER} = "/api/v1/${names}"


async def _body(db: AsyncSession, owner_id: int) -> dict[str, Any]:${body_noqa}
    return {**EXAMPLE${test_body_parent}}


async def _exists(db: AsyncSession, ${name}_id: int) -> bool:
    found = await db.scalar(select(${Name}.id).where(${Name}.id == ${name}_id))
    return found is not None


async def test_create_${name}_makes_the_caller_its_owner(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    body = await _body(db, normal_user.id)
    response = await client.post(${NAME_UPPER}, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 201
    created = response.json()
    assert created["${owner}"] == normal_user.id
    assert {k: created[k] for k in body} == body
    read = await client.get(f"{${NAME_UPPER}}/{created['id']}")
    assert read.json() == created
    listed = await client.get(${NAME_UPPER}, params={"${owner}": normal_user.id})
    assert [r["id"] for r in listed.json()["items"]] == [created["id"]]
    everyone = await client.get(${NAME_UPPER})
    assert created["id"] in [r["id"] for r in everyone.json()["items"]]
${test_list_parent}    mine = await client.get("/api/v1/users/me/${names}", headers=auth_headers(normal_user.id))
    assert [r["id"] for r in mine.json()["items"]] == [created["id"]]


async def test_create_${name}_anonymous_is_401(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    response = await client.post(${NAME_UPPER}, json=await _body(db, normal_user.id))
    assert response.status_code == 401


async def test_create_${name}_without_its_scope_is_403(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    headers = auth_headers(normal_user.id, scopes=())
    response = await client.post(${NAME_UPPER}, json=await _body(db, normal_user.id), headers=headers)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer scope="${names}:write"'


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_missing_${name}_is_404(
    client: httpx2.AsyncClient, normal_user: User, method: str
) -> None:
    response = await client.request(
        method,
        f"{${NAME_UPPER}}/{MAX_ID}",
        json=${changed} if method == "PATCH" else None,
        headers=auth_headers(normal_user.id),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "${Name} not found"}


@pytest.mark.parametrize(("field", "value"), ${invalid})
async def test_create_${name}_with_an_invalid_field_is_422(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, field: str, value: Any
) -> None:
    body = await _body(db, normal_user.id) | {field: value}
    response = await client.post(${NAME_UPPER}, json=body, headers=auth_headers(normal_user.id))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]


async def test_update_${name}_by_its_owner_or_a_superuser_only(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, superuser: User
) -> None:
    ${name} = await create_random_${name}(db, ${owner}=normal_user.id)
    other = await create_random_user(db)
    path = f"{${NAME_UPPER}}/{${name}.id}"
    refused = await client.patch(path, json=${changed}, headers=auth_headers(other.id))
    assert refused.status_code == 403
    owned = await client.patch(path, json=${changed}, headers=auth_headers(normal_user.id))
    assert owned.status_code == 200
    assert owned.json()["${first}"] == ${changed}["${first}"]
    admin = await client.patch(path, json=${changed}, headers=auth_headers(superuser.id, scopes=None))
    assert admin.status_code == 200
    assert admin.json()["${owner}"] == normal_user.id
    nulls = await client.patch(path, json={"${first}": None}, headers=auth_headers(normal_user.id))
    assert nulls.status_code == 422


async def test_delete_${name}_by_its_owner_only(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    ${name} = await create_random_${name}(db, ${owner}=normal_user.id)
    other = await create_random_user(db)
    path = f"{${NAME_UPPER}}/{${name}.id}"
    assert (await client.delete(path, headers=auth_headers(other.id))).status_code == 403
    assert (await client.delete(path, headers=auth_headers(normal_user.id))).status_code == 204
    assert (await client.get(path)).status_code == 404


async def test_deleting_the_owner_deletes_their_${names}(db: AsyncSession) -> None:
    owner = await create_random_user(db)
    ${name} = await create_random_${name}(db, ${owner}=owner.id)
    await db.execute(delete(User).where(User.id == owner.id))
    assert await _exists(db, ${name}.id) is False
${test_parent}
'''
