"""Fixtures for the trait tests: prompt formats and template from conf/, a fake server, fast chat raters."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from personax.traits import ChatConfig, ChatRater, PromptFormat, RequestStore, Task, render_messages
from personax.traits.testing import FakeChatServer
from tests.conftest import compose_config


@pytest.fixture(scope="session")
def traits_cfg():
    return compose_config([]).traits


@pytest.fixture(scope="session")
def formats(traits_cfg):
    return {k: PromptFormat.from_config(OmegaConf.to_container(v)) for k, v in traits_cfg.formats.items()}


@pytest.fixture(scope="session")
def template(traits_cfg):
    return OmegaConf.to_container(traits_cfg.prompt)


def make_tasks(formats, template, n, *, fmt="number_l3_inc", repeats=1, prefix="Person", bio=None):
    tasks = []
    for repeat in range(repeats):
        for i in range(n):
            text = bio(i) if bio else f"{prefix}{i} is talkative, warm and organised but moody."
            messages = render_messages(formats[fmt], template, name=f"{prefix}{i}", context_label="Description",
                                       context=text)
            tasks.append(Task(person_id=f"p{i}", fmt=formats[fmt], repeat=repeat, messages=messages))
    return tasks


def make_rater(url, template, **overrides):
    name = overrides.pop("name", "fake")
    settings = dict(base_url=url, model="fake-model", max_concurrency=4, timeout_s=2.0, max_retries=3,
                    backoff_base_s=0.01, backoff_max_s=0.05)
    settings.update(overrides)
    return ChatRater(ChatConfig.from_mapping(name, settings), template)


@pytest.fixture
def server():
    with FakeChatServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path):
    with RequestStore(tmp_path / "requests.sqlite") as st:
        yield st
