"""The SageMaker event history: one S3 object per event, keyed so that listing gives the order, plus tags.

``s3://BUCKET/PREFIX/<model>/history/<seq>.json`` (``seq`` zero-padded to 8 digits: 1, 2, ...) holds one event
as JSON with its ``prev_hash`` and ``hash`` (the same canonical form as the local registry's, so one verifier
reads both). An append writes the next key with ``If-None-Match: *``: of two writers racing for one key, S3
stores the first and refuses the second (412), which reads the log again and chains after the winner, so the
chain never forks. Written alongside, as tags:

- on the model package group: ``modelops:history-head`` = ``<seq>:<hash>`` of the newest event, where deleting
  the newest objects (which leaves no gap) shows;
- on the endpoint an event changed (deployed, promoted, rolled back): ``modelops:environment``,
  ``modelops:model``, ``modelops:package`` (the package ARN it serves), ``modelops:changed-by``,
  ``modelops:changed-at`` and ``modelops:event`` (``<seq>:<hash>`` of the event in the log);
- on the staging endpoint after a promotion gate: ``modelops:gate`` = ``<action> v<version> <seq>:<hash>``.

The log is the record; the tags let the console and ``aws sagemaker list-tags`` show it without reading S3.
"""

from __future__ import annotations

import json
import re

from modelops.backends.base import History, safe_key
from modelops.backends.sagemaker.aws import describe_error, error_code, is_not_found
from modelops.backends.sagemaker.store import S3Store, split_uri
from modelops.config import endpoint_name
from modelops.entities import GATE_FAILED, GATE_PASSED, SERVES, Event
from modelops.errors import HistoryError

HEAD_TAG = "modelops:history-head"
ENVIRONMENT_TAG = "modelops:environment"
MODEL_TAG = "modelops:model"
PACKAGE_TAG = "modelops:package"
CHANGED_BY_TAG = "modelops:changed-by"
CHANGED_AT_TAG = "modelops:changed-at"
EVENT_TAG = "modelops:event"
GATE_TAG = "modelops:gate"
#: Appends retried when another writer took the next key first.
ATTEMPTS = 10
_KEY = re.compile(r"/history/(\d{8})\.json$")


class S3History(History):
    """Events of each model under ``<prefix>/<model>/history/`` in the store's bucket."""

    def __init__(self, store: S3Store, sagemaker_client):
        self.store = store
        self.sagemaker = sagemaker_client

    def append(self, event: Event) -> Event:
        for _ in range(ATTEMPTS):
            stored = self._stored(event.group)
            last = stored[-1] if stored else None
            chained = event.chained(last.hash if last else None, (last.seq if last else 0) + 1)
            bucket, key = split_uri(self._uri(event.group, chained.seq))
            try:
                self.store.s3.put_object(Bucket=bucket, Key=key, IfNoneMatch="*", ContentType="application/json",
                                         Body=json.dumps(chained.to_json(), sort_keys=True, indent=1).encode())
            except Exception as exc:
                if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    continue  # another writer appended first: chain after it
                raise HistoryError(f"the event ({event.action} v{event.version} of {event.group}) could not be "
                                   f"written to {self.store.uri(event.group, 'history')}: {describe_error(exc)}. "
                                   f"Nothing was recorded. Fix: check the credentials' s3:PutObject on the bucket "
                                   f"and try again.") from exc
            self._tag(chained)
            return chained
        raise HistoryError(f"the event ({event.action} v{event.version} of {event.group}) lost the race for the next "
                           f"place in the log {ATTEMPTS} times: other writers kept appending. Fix: try again.")

    def events(self, group: str) -> list[Event]:
        return self._stored(group)

    def head(self, group: str) -> tuple[int, str] | None:
        arn = self._group_arn(group)
        if arn is None:
            return None
        value = self._tags(arn).get(HEAD_TAG)
        if not value:
            return None
        seq, _, digest = value.partition(":")
        return int(seq), digest

    # -- how -----------------------------------------------------------------------------------------------

    def _uri(self, group: str, seq: int) -> str:
        return self.store.uri(group, "history", f"{seq:08d}.json")

    def _stored(self, group: str) -> list[Event]:
        bucket, prefix = split_uri(self.store.uri(safe_key(group), "history") + "/")
        keys = []
        try:
            for page in self.store.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
            events = []
            for key in sorted(keys):
                found = _KEY.search("/" + key)
                if found is None:
                    continue  # not an event object (a stray upload): the verifier sees only events
                body = json.loads(self.store.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                events.append(_event(body, int(found.group(1))))
        except (ValueError, TypeError, KeyError) as exc:
            raise HistoryError(f"an event object under s3://{bucket}/{prefix} is not an event ({exc}): it was "
                               f"rewritten by hand. Fix: `python -m ci history MODEL --verify` names it.") from exc
        except Exception as exc:
            raise HistoryError(f"the history of {group} could not be read from s3://{bucket}/{prefix}: "
                               f"{describe_error(exc)}. Fix: check the credentials' s3:ListBucket and s3:GetObject "
                               f"on the bucket.") from exc
        return events

    def _tag(self, event: Event) -> None:
        """The tags beside the log (best effort: the log is the record, and has been written)."""
        arn = self._group_arn(event.group)
        stamp = f"{event.seq}:{event.hash}"
        if arn is not None:
            self._add_tags(arn, {HEAD_TAG: stamp})
        if event.environment is None:
            return
        endpoint = self._endpoint_arn(endpoint_name(event.group, event.environment))
        if endpoint is None:
            return
        if event.action in SERVES:
            self._add_tags(endpoint, {ENVIRONMENT_TAG: event.environment, MODEL_TAG: event.group,
                                      PACKAGE_TAG: event.package_id or "", CHANGED_BY_TAG: event.by or "",
                                      CHANGED_AT_TAG: event.at, EVENT_TAG: stamp})
        elif event.action in (GATE_PASSED, GATE_FAILED):
            self._add_tags(endpoint, {GATE_TAG: f"{event.action} v{event.version} {stamp}"})

    def _add_tags(self, arn: str, tags: dict[str, str]) -> None:
        try:
            self.sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v[:256]} for k, v in tags.items() if v])
        except Exception as exc:
            raise HistoryError(f"the event was written to the log, but tagging {arn} failed: {describe_error(exc)}. "
                               f"Fix: grant sagemaker:AddTags; the log itself is complete.") from exc

    def _group_arn(self, group: str) -> str | None:
        try:
            return self.sagemaker.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise HistoryError(f"reading model package group {group} failed: {describe_error(exc)}") from exc

    def _endpoint_arn(self, name: str) -> str | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=name)["EndpointArn"]
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise HistoryError(f"describing endpoint {name} failed: {describe_error(exc)}") from exc

    def _tags(self, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        try:
            for page in self.sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
                tags.update({t["Key"]: t["Value"] for t in page["Tags"]})
        except Exception as exc:
            raise HistoryError(f"reading the tags of {arn} failed: {describe_error(exc)}") from exc
        return tags


def _event(body: dict, seq: int) -> Event:
    """An event object as stored; its place in the log is its key's, whatever the body says."""
    fields = {name: body.get(name) for name in (*Event.__dataclass_fields__,) if name != "seq"}
    if not isinstance(fields.get("group"), str) or not isinstance(fields.get("action"), str):
        raise ValueError("no group or action")
    return Event(**fields, seq=seq)
