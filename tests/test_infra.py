"""The deployment template agrees with the code: handlers exist, settings and table match."""

from __future__ import annotations

import importlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from eventlake.config import Settings
from eventlake.hot.index import index_spec
from eventlake.hot.store import INDEX_NAME, TTL_ATTRIBUTE
from eventlake.hot.tablesettings import TABLE_TAGS

TEMPLATE = Path(__file__).parent.parent / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub) kept as dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


def test_every_function_handler_is_an_importable_callable() -> None:
    functions = [r for r in template()["Resources"].values()
                 if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == 2
    for function in functions:
        module, _, name = function["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))


def test_every_environment_variable_is_a_setting() -> None:
    known = {f.metadata["env"] for f in fields(Settings)}
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert set(variables) <= known
    assert {"EVENTLAKE_TABLE", "EVENTLAKE_LAKE_URI"} <= set(variables)


def test_the_table_matches_what_the_hot_store_provisions() -> None:
    table = template()["Resources"]["EventsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "event_id", "KeyType": "HASH"}]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == INDEX_NAME
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["ingest_shard", "ingest_key"]
    assert index["Projection"] == index_spec()["Projection"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_the_table_records_the_settings_every_process_must_agree_on() -> None:
    # given the settings the code reads from the table's tags, and the stack's parameters
    parameters = {"index_shards": "IndexShards", "retention_days": "RetentionDays"}
    assert set(parameters) == set(TABLE_TAGS)
    tags = {t["Key"]: t["Value"]
            for t in template()["Resources"]["EventsTable"]["Properties"]["Tags"]}
    # then the table carries each as the tag the code reads, from the same parameter the
    # functions' environment uses
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    for name, tag in TABLE_TAGS.items():
        assert tags[tag] == {"Ref": parameters[name]}
        assert variables[Settings().env_name(name)] == {"Ref": parameters[name]}
    assert tags["app"] == "eventlake"


def test_the_ingest_function_may_call_what_the_hot_store_calls() -> None:
    function = template()["Resources"]["IngestFunction"]["Properties"]
    [policy] = function["Policies"]
    [statement] = policy["Statement"]
    # PutItem, GetItem (a conditional write's stored copy), and the table's recorded settings
    assert set(statement["Action"]) >= {"dynamodb:PutItem", "dynamodb:GetItem",
                                        "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource"}
    assert statement["Resource"] == {"GetAtt": "EventsTable.Arn"}


def test_the_stream_archiver_reports_partial_batch_failures() -> None:
    function = template()["Resources"]["StreamArchiverFunction"]["Properties"]
    stream = function["Events"]["Stream"]["Properties"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"


def test_the_bucket_is_private_and_encrypted() -> None:
    bucket = template()["Resources"]["LakeBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
