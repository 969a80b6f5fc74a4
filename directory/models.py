"""Directory tables. They stay inside `directory/`: the API speaks in `schemas.py` Structs."""

from datetime import UTC, date, datetime

from sqlalchemy import JSON, Column, ForeignKey, Integer, String
from sqlmodel import Field, Relationship, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Provider(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True, index=True)
    name: str = Field(max_length=200)
    credentials: str = Field(default="", max_length=60)
    npi: str | None = Field(default=None, max_length=10, unique=True)
    bio: str = Field(default="", max_length=5000)
    photo_url: str | None = Field(default=None, max_length=500)
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    procedures: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accepting_new_patients: bool = True
    telehealth: bool = False
    published: bool = False
    last_reviewed: date | None = None
    deleted_at: datetime | None = None
    # The directory version of this row's last change: workers reload rows newer than they hold.
    revision: int = Field(default=0, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    locations: list["Location"] = Relationship(
        back_populates="provider",
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise", "order_by": "Location.id"},
    )
    conditions: list["ProviderCondition"] = Relationship(
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise"}
    )
    regions: list["ProviderRegion"] = Relationship(
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise"}
    )

    @property
    def is_listed(self) -> bool:
        return self.published and self.deleted_at is None


class Location(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    provider_id: int = Field(
        sa_column=Column(Integer, ForeignKey("provider.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    clinic_name: str = Field(max_length=200)
    address: str = Field(max_length=300)
    city: str = Field(max_length=100)
    state: str = Field(max_length=2)
    zip: str = Field(max_length=5)
    lat: float
    lon: float
    phone: str = Field(default="", max_length=30)

    provider: Provider | None = Relationship(
        back_populates="locations", sa_relationship_kwargs={"lazy": "raise"}
    )


class ProviderCondition(SQLModel, table=True):
    __tablename__ = "provider_condition"

    provider_id: int = Field(
        sa_column=Column(Integer, ForeignKey("provider.id", ondelete="CASCADE"), primary_key=True)
    )
    condition_slug: str = Field(sa_column=Column(String(80), primary_key=True))


class ProviderRegion(SQLModel, table=True):
    __tablename__ = "provider_region"

    provider_id: int = Field(
        sa_column=Column(Integer, ForeignKey("provider.id", ondelete="CASCADE"), primary_key=True)
    )
    region_slug: str = Field(sa_column=Column(String(40), primary_key=True))


class DirectoryState(SQLModel, table=True):
    """One row: the version every directory change raises, so workers can see what changed."""

    __tablename__ = "directory_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
