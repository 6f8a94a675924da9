"""The stored tick table, declared once with SQLModel.

Alembic migrations create it (see backend/migrations); the API reuses the model as the typed
response for history rows. Writes go through COPY in `ticks_repo`, not the ORM, for speed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Double, Index, Text
from sqlmodel import Field, SQLModel


class MdTick(SQLModel, table=True):
    __tablename__ = "md_ticks"
    __table_args__ = (Index("ix_md_ticks_symbol_ts", "symbol", "ts", "event_id"),)

    event_id: str = Field(sa_column=Column(Text(collation="C"), primary_key=True))
    symbol: str = Field(sa_column=Column(Text, nullable=False))
    ts: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    price: float = Field(sa_column=Column(Double, nullable=False))
    volume: float = Field(sa_column=Column(Double, nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
