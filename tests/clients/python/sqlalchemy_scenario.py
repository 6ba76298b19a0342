"""SQLAlchemy 2 ORM scenario over psycopg 3: a declarative model whose encrypted attributes
have their logical types (SQLAlchemy renders bind casts such as %(ssn)s::VARCHAR, batches
inserts with RETURNING, and runs its own catalog queries on connect); add, query by an
encrypted attribute, update, delete, load a relationship joined on the encrypted key."""

import datetime as dt
import decimal
import uuid
from typing import Any, Optional

import sqlalchemy
from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, Double, Integer,
                        LargeBinary, Numeric, SmallInteger, String, Text, Time, Uuid, select)
from sqlalchemy.dialects.postgresql import JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import common
from common import COLUMNS, Checker

TAG = "sqlalchemy"


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "compat_people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(Text)
    note: Mapped[Optional[str]] = mapped_column(Text)
    ssn: Mapped[str] = mapped_column(Text)
    email: Mapped[Optional[str]] = mapped_column(String(200))
    age: Mapped[Optional[int]] = mapped_column(Integer)
    visits: Mapped[Optional[int]] = mapped_column(BigInteger)
    score: Mapped[Optional[float]] = mapped_column(Double)
    balance: Mapped[Optional[decimal.Decimal]] = mapped_column(Numeric)
    active: Mapped[Optional[bool]] = mapped_column(Boolean)
    born: Mapped[Optional[dt.date]] = mapped_column(Date)
    wake: Mapped[Optional[dt.time]] = mapped_column(Time)
    seen: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    seen_tz: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))
    ext_id: Mapped[Optional[uuid.UUID]] = mapped_column(Uuid)
    profile: Mapped[Optional[Any]] = mapped_column(JSONB(none_as_null=True))
    photo: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    small: Mapped[Optional[int]] = mapped_column(SmallInteger)
    ratio: Mapped[Optional[float]] = mapped_column(REAL)
    doc: Mapped[Optional[Any]] = mapped_column(JSON(none_as_null=True))
    orders: Mapped[list["Order"]] = relationship(
        primaryjoin="Person.ssn == foreign(Order.person_ssn)", order_by="Order.amount",
        back_populates="person")


class Order(Base):
    __tablename__ = "compat_orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(Text)
    person_ssn: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(Integer)
    person: Mapped[Person] = relationship(
        primaryjoin="Person.ssn == foreign(Order.person_ssn)", back_populates="orders")


def engine():
    url = sqlalchemy.URL.create(
        "postgresql+psycopg", username=common.env("PGCLOAK_USER"),
        password=common.env("PGCLOAK_PASSWORD"), host=common.env("PGCLOAK_HOST"),
        port=int(common.env("PGCLOAK_PORT")), database=common.env("PGCLOAK_DB"),
        query={"sslmode": "verify-full", "sslrootcert": common.env("PGCLOAK_SSLROOTCERT")})
    return sqlalchemy.create_engine(url)


def as_dict(person):
    return {c: getattr(person, c) for c in COLUMNS}


def scenario(chk):
    people = common.rows(TAG)
    eng = engine()
    with Session(eng) as s:
        objs = [Person(client=TAG, note=f"note {i} ü", **row) for i, row in enumerate(people)]
        objs[0].orders = [Order(client=TAG, amount=a) for a in common.ORDER_AMOUNTS]
        s.add_all(objs)
        s.commit()
        chk.equal("inserted ids", len({o.id for o in objs}), 3)
    with Session(eng) as s:
        for row in people:
            got = s.scalars(select(Person).where(Person.ssn == row["ssn"])).all()
            if chk.equal(f"rows for ssn {row['ssn']}", len(got), 1):
                chk.row(row["ssn"], as_dict(got[0]), row)
        p1 = s.scalars(select(Person).where(Person.ssn == people[0]["ssn"])).one()
        chk.equal("relationship", [(o.amount, o.person_ssn) for o in p1.orders],
                  [(a, people[0]["ssn"]) for a in common.ORDER_AMOUNTS])
        new_email = common.updated_email(TAG)
        p1.email, p1.age, p1.profile = new_email, common.UPDATED["age"], common.UPDATED["profile"]
        s.delete(s.scalars(select(Person).where(Person.ssn == people[2]["ssn"])).one())
        s.commit()
    with Session(eng) as s:
        got = s.scalars(select(Person).where(Person.email == new_email)).all()
        if chk.equal("rows for the new email", len(got), 1):
            chk.row("updated", as_dict(got[0]), dict(people[0], email=new_email, **common.UPDATED))
        left = s.scalar(select(sqlalchemy.func.count()).select_from(Person)
                        .where(Person.client == TAG))
        chk.equal("people left", left, 2)
        joined = s.execute(select(Person.ssn, Person.email, Order.amount)
                           .join(Person.orders).where(Person.client == TAG)
                           .order_by(Order.amount)).all()
        chk.equal("join", [tuple(r) for r in joined],
                  [(people[0]["ssn"], new_email, a) for a in common.ORDER_AMOUNTS])
        order = s.scalars(select(Order).where(Order.client == TAG)
                          .order_by(Order.amount)).first()
        chk.equal("many-to-one relationship", order.person.email if order else None, new_email)
        if common.encrypted():
            err = None
            try:
                s.scalars(select(Person).where(Person.ssn.like("1%"))).all()
            except sqlalchemy.exc.DBAPIError as e:
                err = e
                s.rollback()
            chk.refused("LIKE", err, getattr(getattr(err, "orig", None), "sqlstate", None),
                        sqlalchemy.exc.NotSupportedError)
        chk.equal("session usable after the refusal", s.scalar(select(1)), 1)
    eng.dispose()
    common.at_rest(chk, TAG)


if __name__ == "__main__":
    Checker(TAG).run(scenario)
