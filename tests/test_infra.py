"""The deployment template agrees with the code: handlers exist, settings and table match."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import importlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import pytest
import yaml
from archive_support import World
from botocore.client import BaseClient
from stream_support import batch

from eventlake import EventLake
from eventlake.archive.metrics import ARCHIVE_LAG, NAMESPACE, TTL_MARGIN
from eventlake.config import Settings
from eventlake.handlers import ingest
from eventlake.handlers import stream as stream_handler
from eventlake.hot.index import PREVIOUS_INDEX_NAME, attribute_definitions, index_spec
from eventlake.hot.store import INDEX_NAME, TTL_ATTRIBUTE
from eventlake.hot.tablesettings import TABLE_TAGS
from eventlake.local.stack import MotoServer

TEMPLATE = Path(__file__).parent.parent / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (!Ref, !GetAtt, !Sub, !If...) read as
    their long form ({"Ref": x}, {"Fn::GetAtt": [resource, attribute]}, {"Fn::Sub": ...})."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


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
    index, previous = table["GlobalSecondaryIndexes"]
    assert index == index_spec()
    definitions = [d for d in table["AttributeDefinitions"] if "Fn::If" not in d]
    assert definitions == [{"AttributeName": "event_id", "AttributeType": "S"},
                           *attribute_definitions()]
    # the previous index only while a stack deployed before it migrates (PreviousIndex)
    condition, spec, absent = previous["Fn::If"]
    assert (condition, absent) == ("KeepPreviousIndex", {"Ref": "AWS::NoValue"})
    assert spec["IndexName"] == PREVIOUS_INDEX_NAME
    assert template()["Conditions"]["KeepPreviousIndex"] == {
        "Fn::Equals": [{"Ref": "PreviousIndex"}, "keep"]}
    assert template()["Parameters"]["PreviousIndex"]["Default"] == "drop"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionProtectionEnabled"] is True


def test_the_table_records_the_settings_every_process_must_agree_on() -> None:
    # given the settings the code reads from the table's tags, and the stack's parameters
    parameters = {"index_shards": "IndexShards", "retention_days": "RetentionDays",
                  "clock_skew_seconds": "ClockSkewSeconds",
                  "archive_settle_seconds": "ArchiveSettleSeconds"}
    assert set(parameters) == set(TABLE_TAGS)
    tags = {t["Key"]: t["Value"]
            for t in template()["Resources"]["EventsTable"]["Properties"]["Tags"]}
    # then the table carries each as the tag the code reads, and the functions adopt it: none
    # sets the variable (it would refuse to start while a deploy or `eventlake init` changes
    # the tag before its environment)
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    for name, tag in TABLE_TAGS.items():
        assert tags[tag] == {"Ref": parameters[name]}
        assert Settings().env_name(name) not in variables
        for resource in template()["Resources"].values():
            own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
            assert Settings().env_name(name) not in own
    assert tags["app"] == "eventlake"


def test_the_ingest_function_may_call_what_the_hot_store_calls() -> None:
    function = template()["Resources"]["IngestFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["IngestRole", "Arn"]}
    [statement] = [s for s in _statements(template()["Resources"]["IngestRole"])
                   if s["Sid"] == "Table"]
    # PutItem, GetItem (a conditional write's stored copy), and the table's recorded settings
    assert set(statement["Action"]) >= {"dynamodb:PutItem", "dynamodb:GetItem",
                                        "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource"}
    assert statement["Resource"] == {"Fn::GetAtt": ["EventsTable", "Arn"]}


def test_the_stream_archiver_reports_partial_batch_failures() -> None:
    function = template()["Resources"]["StreamArchiverFunction"]["Properties"]
    stream = function["Events"]["Stream"]["Properties"]
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"


def test_the_bucket_is_private() -> None:
    bucket = template()["Resources"]["LakeBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of an IAM role's inline policies, or of a managed policy."""
    properties = resource["Properties"]
    documents = ([p["PolicyDocument"] for p in properties.get("Policies", [])]
                 if resource["Type"] == "AWS::IAM::Role" else [properties["PolicyDocument"]])
    return [statement for document in documents for statement in document["Statement"]]


# --- the rendered template: what CloudFormation deploys after the SAM transform ----------------
# Each check reads the resources the SAM translator emits (AWS::Lambda::Function,
# AWS::Lambda::EventSourceMapping, AWS::ApiGatewayV2::*...), not the template's comments.

KEY = {"Fn::If": ["CreateKey", {"Fn::GetAtt": ["EventsKey", "Arn"]}, {"Ref": "KmsKeyArn"}]}
"""The key every encrypted resource names: the stack's own, unless KmsKeyArn gives one."""


class _NoManagedPolicies:
    """The translator's managed-policy lookup (IAM ListPolicies) without AWS: the template
    names no managed policy by name."""

    def load(self) -> dict[str, str]:
        return {}


@functools.cache
def _rendered() -> str:
    from samtranslator.translator.transform import transform

    source = template()
    # what `sam package` does: the code is uploaded and CodeUri becomes its S3 location
    source["Globals"]["Function"]["CodeUri"] = "s3://artifacts/eventlake.zip"
    loader = cast(Any, _NoManagedPolicies())
    return json.dumps(transform(source, {}, loader))


def rendered() -> dict[str, Any]:
    """The template after the SAM transform (a fresh copy: tests may not change the cache)."""
    loaded: dict[str, Any] = json.loads(_rendered())
    return loaded


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in rendered()["Resources"].items() if r["Type"] == kind}


def _only(kind: str) -> dict[str, Any]:
    [(_, resource)] = resources(kind).items()
    return resource


def _function(name: str) -> dict[str, Any]:
    function = resources("AWS::Lambda::Function")[name]
    return function


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _statements(resource) if s["Effect"] == "Allow"]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _as_list(s["Action"])}


def test_the_template_renders_into_the_resources_it_promises() -> None:
    kinds = {r["Type"] for r in rendered()["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping",
            "AWS::Lambda::EventInvokeConfig", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage",
            "AWS::KMS::Key", "AWS::SNS::Topic", "AWS::CloudWatch::Alarm",
            "AWS::Logs::LogGroup"} <= kinds
    assert len(resources("AWS::Lambda::Function")) == 2


def test_the_ingest_route_requires_iam_auth() -> None:
    # given the HTTP API as rendered (SAM writes routes and auth into the OpenAPI body)
    body = _only("AWS::ApiGatewayV2::Api")["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    # then every route, POST /events included, requires a SigV4 signature
    routes = [(path, method, op) for path, ops in body["paths"].items()
              for method, op in ops.items()]
    assert ("/events", "post") in {(path, method) for path, method, _ in routes}
    for _, _, operation in routes:
        assert operation["security"] == [{"AWS_IAM": []}]
    # and producers get a policy allowing that route only
    [statement] = _allows(resources("AWS::IAM::ManagedPolicy")["ProducerPolicy"])
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"]["Fn::Sub"].endswith(":${IngestApi}/*/POST/events")


def test_the_api_stage_throttles_and_logs_requests() -> None:
    stage = _only("AWS::ApiGatewayV2::Stage")["Properties"]
    parameters = rendered()["Parameters"]
    settings = stage["DefaultRouteSettings"]
    for setting, parameter in (("ThrottlingRateLimit", "ApiThrottlingRateLimit"),
                               ("ThrottlingBurstLimit", "ApiThrottlingBurstLimit")):
        assert settings[setting] == {"Ref": parameter}
        assert parameters[parameter]["Default"] > 0 and parameters[parameter]["MinValue"] >= 1
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}


def test_every_function_has_a_reserved_concurrency_parameter() -> None:
    parameters = rendered()["Parameters"]
    for name, parameter in (("IngestFunction", "IngestReservedConcurrency"),
                            ("StreamArchiverFunction", "StreamReservedConcurrency")):
        assert _function(name)["Properties"]["ReservedConcurrentExecutions"] == {"Ref": parameter}
        assert parameters[parameter]["MinValue"] >= 1


def test_one_customer_managed_key_is_created_unless_given() -> None:
    template_ = rendered()
    assert template_["Conditions"]["CreateKey"] == {"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}
    assert template_["Parameters"]["KmsKeyArn"]["Default"] == ""
    key = resources("AWS::KMS::Key")["EventsKey"]
    assert key["Condition"] == "CreateKey"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"  # the retained table and bucket need it
    # CloudWatch Logs may use it for this account's log groups only
    [logs] = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
              if s["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}]
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]


def test_the_key_encrypts_table_bucket_queues_topic_logs_and_environments() -> None:
    table = resources("AWS::DynamoDB::Table")["EventsTable"]["Properties"]
    assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS",
                                         "KMSMasterKeyId": KEY}
    [rule] = _only("AWS::S3::Bucket")["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                     "KMSMasterKeyID": KEY}
    assert rule["BucketKeyEnabled"] is True
    queues = resources("AWS::SQS::Queue")
    assert set(queues) == {"IngestFailures", "StreamFailures"}
    for queue in queues.values():
        assert queue["Properties"]["KmsMasterKeyId"] == KEY
        assert "SqsManagedSseEnabled" not in queue["Properties"]
    assert _only("AWS::SNS::Topic")["Properties"]["KmsMasterKeyId"] == KEY
    for group in resources("AWS::Logs::LogGroup").values():
        assert group["Properties"]["KmsKeyId"] == KEY
    for function in resources("AWS::Lambda::Function").values():
        assert function["Properties"]["KmsKeyArn"] == KEY


def test_the_bucket_denies_plain_http() -> None:
    policy = _only("AWS::S3::BucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": "LakeBucket"}
    [deny] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["LakeBucket", "Arn"]},
                                {"Fn::Sub": "${LakeBucket.Arn}/*"}]


def test_the_bucket_keeps_deleted_objects_for_n_days_and_may_log_access() -> None:
    bucket = _only("AWS::S3::Bucket")["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = [r for r in bucket["LifecycleConfiguration"]["Rules"]
              if "NoncurrentVersionExpiration" in r]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    assert "ExpirationInDays" not in rule  # current versions (the lake itself) never expire
    assert rendered()["Parameters"]["NoncurrentVersionDays"]["MinValue"] >= 1
    # access logs: only when a target bucket is given
    condition, logging_on, logging_off = bucket["LoggingConfiguration"]["Fn::If"]
    assert condition == "HasAccessLogs" and logging_off == {"Ref": "AWS::NoValue"}
    assert logging_on["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    assert rendered()["Conditions"]["HasAccessLogs"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AccessLogsBucket"}, ""]}]}


def test_no_iam_statement_allows_every_resource_but_the_named_one() -> None:
    # given every Allow of the functions' roles and the managed policies
    policies = {**resources("AWS::IAM::Role"), **resources("AWS::IAM::ManagedPolicy")}
    assert set(policies) == {"IngestRole", "StreamRole", "ProducerPolicy", "WorkerPolicy"}
    wildcards = []
    for name, policy in policies.items():
        assert "ManagedPolicyArns" not in policy["Properties"]  # nothing granted unseen
        for statement in _allows(policy):
            assert all(not a.endswith("*") for a in _as_list(statement["Action"]))
            if "*" in _as_list(statement["Resource"]):
                wildcards.append((name, statement["Sid"]))
    # then only PutMetricData (no resource-level permission) has "*", narrowed to a namespace
    assert wildcards == [("WorkerPolicy", "SweepMetrics")]
    [metrics] = [s for s in _allows(policies["WorkerPolicy"]) if s["Sid"] == "SweepMetrics"]
    assert metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_the_stream_function_reads_its_stream_and_never_deletes_from_the_lake() -> None:
    # given the stream function's role
    function = _function("StreamArchiverFunction")["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["StreamRole", "Arn"]}
    statements = _allows(resources("AWS::IAM::Role")["StreamRole"])
    # then its S3 actions are Get/Put on the lake prefix (a failed upload aborted) and List
    # under it: no Delete
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    assert _actions(s3) == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                            "s3:ListBucket"}
    for statement in s3:
        if statement["Action"] == "s3:ListBucket":
            assert statement["Condition"]["StringLike"]["s3:prefix"] == [
                {"Ref": "LakePrefix"}, {"Fn::Sub": "${LakePrefix}/*"}]
        else:
            assert statement["Resource"] == {"Fn::Sub": "${LakeBucket.Arn}/${LakePrefix}/*"}
    # and its stream actions name this table's stream only
    ddb = [s for s in statements if any(a.startswith("dynamodb:") for a in
                                        _as_list(s["Action"]))]
    assert _actions(ddb) == {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                             "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
    for statement in ddb:
        assert statement["Resource"] in ({"Fn::GetAtt": ["EventsTable", "StreamArn"]},
                                         {"Fn::Sub": "${EventsTable.Arn}/stream/*"})
    # deleting lake files is the worker's (compaction), not the Lambda's
    worker = _actions(_allows(resources("AWS::IAM::ManagedPolicy")["WorkerPolicy"]))
    assert "s3:DeleteObject" in worker


def test_the_ingest_role_allows_what_the_handler_calls_and_nothing_else(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the ingest role's actions (logs, the key and the on-failure queue aside)
    statements = _allows(resources("AWS::IAM::Role")["IngestRole"])
    allowed = _actions(statements)
    assert {a.split(":")[0] for a in allowed} == {"dynamodb", "sqs", "logs", "kms"}
    # when the handler runs on moto, as Lambda would build it (from the environment), every
    # AWS call recorded
    calls: list[str] = []
    original = BaseClient._make_api_call

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append(f"{client.meta.service_model.endpoint_prefix}:{operation}")
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    monkeypatch.setenv("EVENTLAKE_TABLE", lake.settings.table)
    ingest.reset()
    try:
        event = {"event_id": "iam-1", "event_type": "order.placed",
                 "timestamp": "2026-03-14T09:26:51Z", "event_payload": {"n": 1}}
        changed = {**event, "event_payload": {"n": 2}}
        request = {"version": "2.0", "routeKey": "POST /events", "body": json.dumps(
            [event, event]), "requestContext": {"http": {"method": "POST"}}}
        assert ingest.handler(request)["statusCode"] == 207  # created, then its duplicate
        assert ingest.handler({"events": [event, changed]})["statusCode"] == 409  # a conflict
    finally:
        ingest.reset()
    # then each call is allowed, on the table the role names
    assert "dynamodb:PutItem" in calls
    assert set(calls) <= allowed, set(calls) - allowed
    [table] = [s for s in statements if s["Sid"] == "Table"]
    assert table["Resource"] == {"Fn::GetAtt": ["EventsTable", "Arn"]}
    assert _actions([table]) == {"dynamodb:PutItem", "dynamodb:GetItem",
                                 "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource"}


def test_the_ingest_functions_async_failures_go_to_a_queue_it_may_write() -> None:
    config = _only("AWS::Lambda::EventInvokeConfig")["Properties"]
    assert config["FunctionName"] == {"Ref": "IngestFunction"}
    assert 0 <= config["MaximumRetryAttempts"] <= 2
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    queue, attribute = destination["Fn::GetAtt"]
    assert attribute == "Arn" and queue in resources("AWS::SQS::Queue")
    [send] = [s for s in _allows(resources("AWS::IAM::Role")["IngestRole"])
              if s["Action"] == "sqs:SendMessage"]
    assert send["Resource"] == destination


def test_the_stream_mapping_bisects_bounds_retries_and_gives_up_inside_24_hours() -> None:
    mapping = _only("AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 100  # -1 would be "until the record expires"
    # DynamoDB Streams keep a record 24 h: giving up well before leaves the sweep time
    assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 12 * 3600
    # DynamoDB stream mappings take 1-10,000 records a batch (cfn-lint 1.58 does not check it)
    assert 1 <= mapping["BatchSize"] <= 10_000
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    queue, _ = destination["Fn::GetAtt"]
    assert queue in resources("AWS::SQS::Queue")
    [send] = [s for s in _allows(resources("AWS::IAM::Role")["StreamRole"])
              if s["Action"] == "sqs:SendMessage"]
    assert send["Resource"] == destination


def test_the_table_is_protected_from_deletion_and_recoverable() -> None:
    table = resources("AWS::DynamoDB::Table")["EventsTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True}
    index, _ = table["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == INDEX_NAME


def _alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of an alarm, plain or metric math."""
    properties = alarm["Properties"]
    if "MetricName" in properties:
        specs = [properties]
    else:
        specs = [q["MetricStat"]["Metric"] for q in properties["Metrics"] if "MetricStat" in q]
    return [(spec["Namespace"], spec["MetricName"],
             {d["Name"]: d["Value"] for d in spec.get("Dimensions", [])}) for spec in specs]


def test_alarms_watch_each_named_metric_and_notify_the_topic() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    watched = [m for alarm in alarms.values() for m in _alarm_metrics(alarm)]
    ingest_fn, stream_fn = {"Ref": "IngestFunction"}, {"Ref": "StreamArchiverFunction"}
    table = {"Ref": "EventsTable"}
    expected = [
        ("AWS/Lambda", "IteratorAge", {"FunctionName": stream_fn}),
        ("AWS/Lambda", "Errors", {"FunctionName": ingest_fn}),
        ("AWS/Lambda", "Errors", {"FunctionName": stream_fn}),
        ("AWS/Lambda", "Throttles", {"FunctionName": ingest_fn}),
        ("AWS/Lambda", "Throttles", {"FunctionName": stream_fn}),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         {"QueueName": {"Fn::GetAtt": ["StreamFailures", "QueueName"]}}),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
         {"QueueName": {"Fn::GetAtt": ["IngestFailures", "QueueName"]}}),
        ("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "IngestApi"}, "Stage": "$default"}),
        ("AWS/DynamoDB", "WriteThrottleEvents", {"TableName": table}),
        ("AWS/DynamoDB", "ReadThrottleEvents", {"TableName": table}),
        ("AWS/DynamoDB", "WriteThrottleEvents",
         {"TableName": table, "GlobalSecondaryIndexName": INDEX_NAME}),
        (NAMESPACE, ARCHIVE_LAG, {"Table": table}),
        (NAMESPACE, TTL_MARGIN, {"Table": table}),
    ]
    for metric in expected:
        assert metric in watched, metric
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def _stream_log_lines(lake: Any, event: dict[str, Any], caplog: pytest.LogCaptureFixture
                      ) -> list[str]:
    """The stream handler's log lines for `event`, as Lambda's text log format writes them
    (`[LEVEL]\t<time>\t<request id>\t<message>`)."""
    stream_handler.reset(lake)
    caplog.clear()
    try:
        with caplog.at_level("INFO", logger=stream_handler.__name__):
            stream_handler.handler(event, SimpleNamespace(aws_request_id="req-1"))
    finally:
        stream_handler.reset()
    return [f"[{r.levelname}]\t2026-11-30T08:00:00.000Z\treq-1\t{r.getMessage()}"
            for r in caplog.records if r.name == stream_handler.__name__]


@pytest.mark.parametrize(("filter_name", "count"), [
    ("StreamQuarantinedMetric", "quarantined"),
    ("StreamRemovedArchivedMetric", "removed_archived"),
])
def test_stream_log_filters_count_the_batches_an_operator_must_see_and_are_alarmed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, filter_name: str, count: str) -> None:
    from stream_support import new_lake

    # given the metric filter on the stream function's log group, and its alarm
    metric_filter = resources("AWS::Logs::MetricFilter")[filter_name]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "StreamLogs"}
    [transform] = metric_filter["MetricTransformations"]
    watched = [m for alarm in resources("AWS::CloudWatch::Alarm").values()
               for m in _alarm_metrics(alarm)]
    assert (transform["MetricNamespace"], transform["MetricName"], {}) in watched
    pattern = re.compile(metric_filter["FilterPattern"].strip("%"))
    # when the handler logs a batch with such records (the fixture batch quarantines a MODIFY;
    # a lake no sweep vouched for takes the REMOVEs' old images), and a batch with none
    flagged = _stream_log_lines(new_lake(tmp_path / "a", vouched=False), batch(), caplog)
    clean = _stream_log_lines(new_lake(tmp_path / "b"),
                              {"Records": batch()["Records"][:5]}, caplog)
    # then the pattern (CloudWatch regex: unanchored) matches the first line only
    assert [json.loads(line.split("\t", 3)[3])[count] > 0 for line in flagged] == [True]
    assert [bool(pattern.search(line)) for line in flagged] == [True]
    assert [json.loads(line.split("\t", 3)[3])[count] for line in clean] == [0]
    assert [bool(pattern.search(line)) for line in clean] == [False]


def test_a_sweep_that_stops_reporting_raises_the_archive_lag_alarm() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    [lag] = [a for a in alarms.values() if (NAMESPACE, ARCHIVE_LAG) in
             [m[:2] for m in _alarm_metrics(a)]]
    assert lag["Properties"]["TreatMissingData"] == "breaching"
    assert lag["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    [margin] = [a for a in alarms.values() if (NAMESPACE, TTL_MARGIN) in
                [m[:2] for m in _alarm_metrics(a)]]
    assert margin["Properties"]["ComparisonOperator"] == "LessThanThreshold"
    parameters = rendered()["Parameters"]
    threshold = margin["Properties"]["Threshold"]["Ref"]
    assert parameters[threshold]["Default"] > parameters["TtlSafetyHours"]["Default"]


def test_the_alarm_email_is_subscribed_only_when_given() -> None:
    subscription = _only("AWS::SNS::Subscription")
    assert subscription["Condition"] == "HasAlarmEmail"
    assert rendered()["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert subscription["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"},
                                          "Protocol": "email",
                                          "Endpoint": {"Ref": "AlarmEmail"}}


def test_every_log_group_has_retention_and_every_function_logs_to_one() -> None:
    groups = resources("AWS::Logs::LogGroup")
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    # a function without LoggingConfig would log to an implicit group that keeps logs forever
    roles = resources("AWS::IAM::Role")
    for function in resources("AWS::Lambda::Function").values():
        properties = function["Properties"]
        target = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert target in groups
        role = properties["Role"]["Fn::GetAtt"][0]
        [logs] = [s for s in _allows(roles[role]) if s["Sid"] == "Logs"]
        assert logs["Resource"] == {"Fn::GetAtt": [target, "Arn"]}


# --- the lake's S3 requests against the roles' S3 statements -----------------------------------
# moto checks no IAM: these tests record each S3 request the code makes on a moto server (boto3's
# and pyarrow's alike), name the IAM action it needs, and evaluate it against the template's
# statements, conditions included (`s3:prefix` on s3:ListBucket; HeadBucket carries no prefix).

Request = tuple[str, str, dict[str, list[str]]]
"""(method, path, query) of one S3 request, path-style: `/bucket/key`."""


@contextlib.contextmanager
def s3_requests(server: MotoServer) -> Iterator[list[Request]]:
    """Every S3 request the moto server answers meanwhile."""
    inner = server._server.app
    seen: list[Request] = []

    def record(environ: dict[str, Any], start_response: Any) -> Any:
        if "/s3/aws4_request" in (environ.get("HTTP_AUTHORIZATION") or ""):
            method, path = environ["REQUEST_METHOD"], unquote(environ["PATH_INFO"])
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            if method == "POST" and "delete" in query:  # DeleteObjects: one DeleteObject a key
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                environ["wsgi.input"] = io.BytesIO(body)
                seen.extend(("DELETE", f"{path.rstrip('/')}/{key}", {}) for key in
                            re.findall(r"<Key>([^<]*)</Key>", body.decode()))
            else:
                seen.append((method, path, query))
        return inner(environ, start_response)

    server._server.app = record
    try:
        yield seen
    finally:
        server._server.app = inner


def _needs(request: Request) -> tuple[str, str, str | None]:
    """The IAM action an S3 request needs, its resource (`bucket` or `bucket/key`) and, for
    s3:ListBucket, the `s3:prefix` it carries (None: HeadBucket, a listing without one)."""
    method, path, query = request
    bucket, _, key = path.lstrip("/").partition("/")
    if not key:
        if method == "HEAD" or (method == "GET" and "list-type" in query):
            return "s3:ListBucket", bucket, query.get("prefix", [None])[0]
        raise AssertionError(f"an S3 request no test maps to an action: {request}")
    if method in ("GET", "HEAD"):
        return "s3:GetObject", path.lstrip("/"), None
    if method in ("PUT", "POST"):  # a PUT, or a multipart upload's create, parts, complete
        return "s3:PutObject", path.lstrip("/"), None
    if method == "DELETE":
        return ("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject",
                path.lstrip("/"), None)
    raise AssertionError(f"an S3 request no test maps to an action: {request}")


def _allowed(statements: list[dict[str, Any]], request: Request, bucket: str,
             prefix: str) -> bool:
    """Whether one of `statements` (the template's S3 Allows) allows `request` on a stack whose
    LakeBucket is `bucket` and LakePrefix `prefix`."""
    action, resource, list_prefix = _needs(request)
    values = {"${LakeBucket.Arn}": f"arn:aws:s3:::{bucket}", "${LakePrefix}": prefix}

    def arn(value: Any) -> str:
        if value == {"Fn::GetAtt": ["LakeBucket", "Arn"]}:
            return f"arn:aws:s3:::{bucket}"
        text = value["Fn::Sub"] if isinstance(value, dict) else value
        for name, real in values.items():
            text = text.replace(name, real)
        return str(text)

    for statement in statements:
        if action not in _as_list(statement["Action"]):
            continue
        if not any(fnmatch.fnmatchcase(f"arn:aws:s3:::{resource}", arn(r))
                   for r in _as_list(statement["Resource"])):
            continue
        condition = statement.get("Condition")
        if condition is None:
            return True
        assert set(condition) == {"StringLike"} and set(condition["StringLike"]) == {"s3:prefix"}
        patterns = [prefix if p == {"Ref": "LakePrefix"} else arn(p)
                    for p in condition["StringLike"]["s3:prefix"]]
        if list_prefix is not None and any(fnmatch.fnmatchcase(list_prefix, p)
                                           for p in patterns):
            return True
    return False


def _s3_statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _allows(resource) if any(a.startswith("s3:") for a in
                                                 _as_list(s["Action"]))]


def _refused(statements: list[dict[str, Any]], requests: list[Request], lake_uri: str
             ) -> list[tuple[str, str, str | None]]:
    """The requests `statements` refuse, and the abort of each multipart upload among them (a
    failed upload's, which a run that succeeds does not make)."""
    bucket, _, prefix = lake_uri.removeprefix("s3://").partition("/")
    aborts: list[Request] = [("DELETE", path, {"uploadId": ["u-1"]})
                             for method, path, query in requests
                             if method == "POST" and "uploads" in query]
    return [_needs(r) for r in [*requests, *aborts]
            if not _allowed(statements, r, bucket, prefix)]


def test_the_stream_role_allows_every_s3_request_the_handler_makes_on_a_new_lake(
        s3_world: World, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake as the stack leaves it (initialised, no event yet) and the handler built
    # from the environment, as Lambda builds it
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", s3_world.lake.root)
    stream_handler.reset()
    try:
        # when it archives a batch (INSERTs over two days, a MODIFY quarantined, REMOVEs), then
        # the same batch again (the second sees the files of the first)
        with s3_requests(moto_server) as requests:
            for _ in range(2):
                assert stream_handler.handler(batch(), SimpleNamespace(
                    aws_request_id="req-1")) == {"batchItemFailures": []}
    finally:
        stream_handler.reset()
    # then the StreamRole allows each S3 request it made
    statements = _s3_statements(resources("AWS::IAM::Role")["StreamRole"])
    assert {_needs(r)[0] for r in requests} >= {"s3:PutObject", "s3:ListBucket"}
    refused = _refused(statements, requests, s3_world.lake.root)
    assert refused == [], refused


def test_the_worker_policy_allows_every_aws_call_of_archive_compact_reconcile_and_backfill(
        s3_world: World, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a lake as the stack leaves it, and a table where events arrive over three days
    producer = EventLake(s3_world.settings)
    now = producer.hot.now()

    def arrive(first: int) -> None:
        for day in range(3):
            for n in range(first, first + 2):
                assert producer.put({"event_type": "order.placed", "event_payload": {"n": n},
                                     "timestamp": (now - timedelta(days=day, minutes=n)
                                                   ).isoformat()}).ok

    arrive(0)
    calls: set[str] = set()  # boto3's, the worker's only (pyarrow's: the server records them)
    worker: list[EventLake] = []
    original = BaseClient._make_api_call

    def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if worker and client in (worker[0].clients.dynamodb, worker[0].clients.s3):
            calls.add(f"{client.meta.service_model.endpoint_prefix}:{operation}")
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    with s3_requests(moto_server) as requests:
        # when a new worker process runs: a sweep on the new lake, another after more events
        # came (two files per partition), compaction (which deletes what it merged), a
        # reconcile, a backfill
        lake = EventLake(s3_world.settings)
        worker.append(lake)
        lake.archive(settle_seconds=0)
        arrive(2)
        lake.archive(settle_seconds=0)
        assert len(lake.compact(min_files=2).partitions) == 3
        lake.reconcile(start=(now - timedelta(days=3)).date(), end=now.date(), repair=True)
        lake.backfill(segments=2)
    # then the WorkerPolicy allows the table's reads they made, and only those
    policy = resources("AWS::IAM::ManagedPolicy")["WorkerPolicy"]
    [table] = [s for s in _allows(policy) if s["Sid"] == "TableReads"]
    assert {c for c in calls if c.startswith("dynamodb:")} == _actions([table])
    # and each S3 request
    statements = _s3_statements(policy)
    assert {_needs(r)[0] for r in requests} >= {"s3:PutObject", "s3:ListBucket",
                                                "s3:GetObject", "s3:DeleteObject"}
    refused = _refused(statements, requests, s3_world.lake.root)
    assert refused == [], refused
