"""Read-only resources derived from seed data (images, flavors, networks...).

IDs are UUIDv5 of the resource name so they are identical on every start:
servers persisted before a restart still point at valid image/flavor/network
IDs without the seed data itself being persisted.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field

from tools.embedded_cloud.config import (
    FlavorSeed,
    ImageSeed,
    NetworkSeed,
    SecurityGroupSeed,
    SeedData,
    UserSeed,
)

_NAMESPACE = uuid.UUID("5b0c4f0e-5d1e-4c36-9a51-2c8e8e6f0d11")
DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
# Fixed creation time for seeded resources (they "always existed").
SEED_TIMESTAMP = "2024-01-01T00:00:00Z"
SEED_EPOCH = 1704067200.0


def stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


@dataclass(frozen=True)
class Image:
    id: str
    seed: ImageSeed


@dataclass(frozen=True)
class Flavor:
    id: str
    seed: FlavorSeed


@dataclass(frozen=True)
class Network:
    id: str
    subnet_id: str
    seed: NetworkSeed

    @property
    def cidr(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.seed.cidr, strict=False)

    @property
    def gateway(self) -> str:
        return str(next(self.cidr.hosts()))


@dataclass(frozen=True)
class User:
    id: str
    seed: UserSeed


@dataclass
class SeedCatalog:
    seed: SeedData
    images: dict[str, Image] = field(default_factory=dict)
    flavors: dict[str, Flavor] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroupSeed] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    # project id -> name for the seeded projects
    projects: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, seed: SeedData) -> SeedCatalog:
        cat = cls(seed=seed)
        for image in seed.images:
            cat.images[stable_id("image", image.name)] = Image(stable_id("image", image.name), image)
        for flavor in seed.flavors:
            cat.flavors[stable_id("flavor", flavor.name)] = Flavor(stable_id("flavor", flavor.name), flavor)
        for net in seed.networks:
            cat.networks[stable_id("network", net.name)] = Network(
                stable_id("network", net.name), stable_id("subnet", net.name), net
            )
        for group in seed.security_groups:
            cat.security_groups[stable_id("secgroup", group.name)] = group
        for user in seed.users:
            cat.users[stable_id("user", user.name)] = User(stable_id("user", user.name), user)
        for project in seed.projects:
            cat.projects[stable_id("project", project)] = project
        return cat

    def image(self, ref: str) -> Image | None:
        """Look an image up by ID or by a URL ending in the ID (Nova allows)."""
        return self.images.get(ref.rstrip("/").rsplit("/", 1)[-1])

    def flavor(self, ref: str) -> Flavor | None:
        return self.flavors.get(ref.rstrip("/").rsplit("/", 1)[-1])

    def user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users.values() if u.seed.name == name), None)

    @property
    def default_network(self) -> Network | None:
        # networks="auto" attaches the first network, as a cloud with a
        # single shared tenant network would.
        return next(iter(self.networks.values()), None)
