"""The source namespace: seeding, the 10 % change between resyncs, checking a target.

Repositories are ``src/r000…``; tags ``v1…vN``; every ``index_every``-th tag is a
two-platform OCI index, the rest single-platform Docker images of ``layers`` random layers.
Each mirror tool gets the same workload shape: a change round replaces every 10th
(repository, tag) pair — one tag per repository when there are 10 tags — with a new image
of the same kind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from bench.settings import ORG, SOURCE_NAMESPACE, BenchConfig
from tests.support import images
from tests.support.registry_server import RegistryServer

HTTP_TIMEOUT = httpx.Timeout(60.0)
VERIFY_CONCURRENCY = 16


def repo_names(count: int) -> list[str]:
    return [f"{SOURCE_NAMESPACE}/r{i:03d}" for i in range(count)]


def target_repo(source_repo: str) -> str:
    """Where every tool puts ``src/rNNN``: ``myorg/rNNN`` (orgmirror strips the namespace)."""
    return f"{ORG}/{source_repo.rsplit('/', 1)[-1]}"


@dataclass
class Workload:
    config: BenchConfig
    source: RegistryServer
    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    rounds: int = 0

    @property
    def repos(self) -> list[str]:
        return sorted(self.digests)

    def tag_names(self) -> list[str]:
        return [f"v{i}" for i in range(1, self.config.tags + 1)]

    def is_index(self, tag: str) -> bool:
        every = self.config.index_every
        return bool(every) and int(tag.removeprefix("v")) % every == 0

    async def seed(self) -> float:
        """Push every repository and tag; returns the seconds it took."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            self.digests = await images.seed(
                client,
                self.source.url,
                repo_names(cfg.repos),
                cfg.tags,
                index_every=cfg.index_every,
                layers=cfg.layers,
                layer_size=cfg.layer_size,
                concurrency=8,
            )
        return loop.time() - started

    def next_change_set(self) -> list[tuple[str, str]]:
        """The pairs the next change round replaces: every k-th pair from a rotating offset."""
        step = max(1, round(1 / self.config.change_fraction))
        pairs = [(repo, tag) for repo in self.repos for tag in self.tag_names()]
        offset = self.rounds % step
        self.rounds += 1
        return [pair for i, pair in enumerate(pairs) if i % step == offset]

    async def change(self) -> int:
        """Replace 10 % of the tags with new images (index stays index); returns how many."""
        changes = self.next_change_set()
        gate = asyncio.Semaphore(8)
        cfg = self.config

        async def one(client: httpx.AsyncClient, repo: str, tag: str) -> None:
            async with gate:
                if self.is_index(tag):
                    digest = await images.push_index(client, self.source.url, repo, tag)
                else:
                    digest = await images.push_image(
                        client,
                        self.source.url,
                        repo,
                        tag,
                        layers=cfg.layers,
                        layer_size=cfg.layer_size,
                    )
            self.digests[repo][tag] = digest

        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            await asyncio.gather(*(one(client, repo, tag) for repo, tag in changes))
        return len(changes)

    async def mismatches(self, target: RegistryServer) -> list[str]:
        """Every ``repo:tag`` whose digest in the target differs from the source's now."""
        gate = asyncio.Semaphore(VERIFY_CONCURRENCY)
        wrong: list[str] = []

        async def one(client: httpx.AsyncClient, repo: str, tag: str, want: str) -> None:
            async with gate:
                got = await images.manifest_digest(client, target.url, target_repo(repo), tag)
            if got != want:
                wrong.append(f"{target_repo(repo)}:{tag} has {got}, source has {want}")

        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            await asyncio.gather(
                *(
                    one(client, repo, tag, digest)
                    for repo, tags in self.digests.items()
                    for tag, digest in tags.items()
                )
            )
        return sorted(wrong)
