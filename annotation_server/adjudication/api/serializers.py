"""Adjudication API payloads. Reader identities never appear: member findings
are labelled R1..RN for arbitrators (pseudonyms for managers), as everywhere."""

from __future__ import annotations

from rest_framework import serializers

from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)


def _labeller(context):
    from annotation_server.reading.anonymise import ReaderLabeller

    labeller = context.get("labeller")
    if labeller is None:
        labeller = context["labeller"] = ReaderLabeller(context["request"].user)
    return labeller


def _centre(obj) -> list[float] | None:
    if obj.centre_x_mm is None:
        return None
    return [obj.centre_x_mm, obj.centre_y_mm, obj.centre_z_mm]


class MemberFindingSerializer(serializers.Serializer):
    """A reader's finding inside a cluster, with the reader anonymised."""

    def to_representation(self, finding):
        return {
            "uid": str(finding.uid),
            "reader": _labeller(self.context).label(finding.task),
            "phase": finding.task.phase,
            "finding_type": finding.finding_type,
            "geometry": finding.geometry,
            "attributes": finding.attributes,
            "source": finding.source,
            "centre_mm": _centre(finding),
        }


class ReferenceFindingSerializer(serializers.ModelSerializer):
    centre_mm = serializers.SerializerMethodField()
    supporting_findings = serializers.SerializerMethodField()
    decided_by_role = serializers.CharField(
        source="arbitration_task.role", default=None, read_only=True
    )

    class Meta:
        model = ReferenceFinding
        fields = [
            "id",
            "case",
            "ref_key",
            "revision",
            "is_current",
            "supersedes",
            "status",
            "finding_type",
            "geometry",
            "centre_mm",
            "diameter_mm",
            "attributes",
            "decision",
            "supporting_findings",
            "arbitration_task",
            "decided_by_role",
            "decided_at",
            "reason_code",
            "reason_text",
            "match_rule",
            "match_threshold",
        ]
        read_only_fields = fields

    def get_centre_mm(self, obj) -> list[float] | None:
        return _centre(obj)

    def get_supporting_findings(self, obj) -> list[dict[str, str]]:
        labeller = _labeller(self.context)
        return [
            {"uid": str(f.uid), "reader": labeller.label(f.task)}
            for f in obj.supporting_findings.all()
        ]


class ReferenceLabelsSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReferenceLabels
        fields = [
            "id",
            "revision",
            "is_current",
            "supersedes",
            "values",
            "provenance",
            "derived",
            "decision",
            "arbitration_task",
            "decided_at",
        ]
        read_only_fields = fields


class ClusterSerializer(serializers.ModelSerializer):
    centre_mm = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()
    current_reference = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = [
            "id",
            "case",
            "number",
            "ref_key",
            "finding_type",
            "readers",
            "centre_mm",
            "match_rule",
            "match_threshold",
            "threshold_used",
            "tightened_on",
            "verdict",
            "reasons",
            "consensus_geometry",
            "consensus_attributes",
            "diameter_mm",
            "members",
            "current_reference",
        ]
        read_only_fields = fields

    def get_centre_mm(self, obj) -> list[float] | None:
        return _centre(obj)

    def get_members(self, obj) -> list[dict]:
        members = sorted(obj.findings.all(), key=lambda f: _labeller(self.context).label(f.task))
        return MemberFindingSerializer(members, many=True, context=self.context).data

    def get_current_reference(self, obj) -> dict | None:
        refs = self.context.get("current_refs")
        if refs is None:
            ref = ReferenceFinding.objects.filter(ref_key=obj.ref_key, is_current=True).first()
        else:
            ref = refs.get(obj.ref_key)
        return ReferenceFindingSerializer(ref, context=self.context).data if ref else None


class SettlementSerializer(serializers.ModelSerializer):
    label_disputes = serializers.SerializerMethodField()

    class Meta:
        model = Settlement
        fields = [
            "id",
            "round",
            "phase",
            "protocol",
            "label_disputes",
            "label_consensus",
            "outcome",
            "created_at",
        ]
        read_only_fields = fields

    def get_label_disputes(self, obj) -> list[dict]:
        return anonymised_label_disputes(obj, self.context)


def anonymised_label_disputes(settlement: Settlement, context, keys=None) -> list[dict]:
    """Settlement label disputes with read ids replaced by R1..RN labels."""
    from annotation_server.reading.models import ReadingTask

    labeller = _labeller(context)
    reads = {
        str(t.pk): t
        for t in ReadingTask.objects.filter(case_id=settlement.case_id).select_related(
            "case__project", "reader__profile"
        )
    }
    out = []
    for d in settlement.label_disputes:
        if keys is not None and d["key"] not in keys:
            continue
        values = {
            labeller.label(reads[rid]) if rid in reads else "?": v for rid, v in d["values"].items()
        }
        row = {"key": d["key"], "values": dict(sorted(values.items()))}
        if d.get("rule"):  # why an ordinal grade disputes (qc.grading)
            row["rule"] = d["rule"]
        out.append(row)
    return out


class ArbitrationTaskSerializer(serializers.ModelSerializer):
    case_code = serializers.CharField(source="case.code", read_only=True)
    case_state = serializers.CharField(source="case.state", read_only=True)
    project = serializers.CharField(source="case.project.slug", read_only=True)
    series = serializers.IntegerField(source="case.series_id", read_only=True)
    open_items = serializers.SerializerMethodField()

    class Meta:
        model = ArbitrationTask
        fields = [
            "id",
            "case",
            "case_code",
            "case_state",
            "project",
            "series",
            "role",
            "round",
            "state",
            "assigned_at",
            "due_at",
            "signed_at",
            "version",
            "open_items",
        ]
        read_only_fields = fields

    def get_open_items(self, task) -> dict[str, int]:
        items = task.items or {}
        decided = task.decisions or {}
        total = len(items.get("clusters", [])) + len(items.get("labels", []))
        done = len(decided.get("clusters", {})) + len(decided.get("labels", {}))
        return {"total": total, "decided": done}


class ArbitrationTaskDetailSerializer(ArbitrationTaskSerializer):
    """Everything the arbitration page needs for one task, in one response."""

    decisions = serializers.JSONField(read_only=True)
    clusters = serializers.SerializerMethodField()
    label_disputes = serializers.SerializerMethodField()
    label_fields = serializers.SerializerMethodField()
    finding_types = serializers.SerializerMethodField()
    current_labels = serializers.SerializerMethodField()
    reason_codes = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    blind_decisions = serializers.SerializerMethodField()

    class Meta(ArbitrationTaskSerializer.Meta):
        fields = [
            *ArbitrationTaskSerializer.Meta.fields,
            "items",
            "decisions",
            "signature_hash",
            "clusters",
            "label_disputes",
            "label_fields",
            "finding_types",
            "current_labels",
            "reason_codes",
            "actions",
            "blind_decisions",
        ]
        read_only_fields = fields

    def get_clusters(self, task) -> list[dict]:
        from annotation_server.adjudication.services import task_clusters

        clusters = task_clusters(task)
        keys = [c.ref_key for c in clusters]
        refs = {
            r.ref_key: r
            for r in ReferenceFinding.objects.filter(ref_key__in=keys, is_current=True)
            .select_related("arbitration_task")
            .prefetch_related("supporting_findings__task__case__project")
        }
        context = {**self.context, "current_refs": refs}
        return ClusterSerializer(clusters, many=True, context=context).data

    def get_label_disputes(self, task) -> list[dict]:
        settlement = Settlement.objects.filter(case_id=task.case_id).order_by("round").first()
        if settlement is None:
            return []
        keys = set(task.items.get("labels", []))
        found = anonymised_label_disputes(settlement, self.context, keys)
        missing = keys - {d["key"] for d in found}  # re-arbitration of agreed fields
        return found + [{"key": k, "values": {}} for k in sorted(missing)]

    def get_label_fields(self, task) -> list[dict]:
        fields = task.case.project.label_schema.definition.get("case_fields", [])
        keys = set(task.items.get("labels", []))
        return [f for f in fields if f["key"] in keys]

    def get_finding_types(self, task) -> list[dict]:
        return task.case.project.label_schema.definition.get("finding_types", [])

    def get_current_labels(self, task) -> dict | None:
        current = ReferenceLabels.objects.filter(case_id=task.case_id, is_current=True).first()
        return ReferenceLabelsSerializer(current).data if current else None

    def get_reason_codes(self, task) -> list[dict[str, str]]:
        from annotation_server.adjudication.services import REASON_CODES

        return [{"code": k, "label": str(v)} for k, v in REASON_CODES.items()]

    def get_actions(self, task) -> dict[str, list[str]]:
        from annotation_server.adjudication.services import ACTIONS
        from qc.consensus import METHODS

        return {"cluster_actions": list(ACTIONS), "merge_methods": list(METHODS)}

    def get_blind_decisions(self, task) -> dict | None:
        """Only the tie-breaker sees the two blind decisions, and only for the items
        they must decide; as "A" and "B", never by name."""
        if task.role != ArbitrationTask.Role.TIEBREAK:
            return None
        blind = {
            t.role: t.decisions
            for t in ArbitrationTask.objects.filter(
                case_id=task.case_id,
                round=task.round,
                role__in=(ArbitrationTask.Role.FIRST, ArbitrationTask.Role.SECOND),
            )
        }
        out = {}
        for name, role in (("A", "first"), ("B", "second")):
            d = blind.get(role, {})
            out[name] = {
                "clusters": {
                    str(c): d.get("clusters", {}).get(str(c))
                    for c in task.items.get("clusters", [])
                },
                "labels": {k: d.get("labels", {}).get(k) for k in task.items.get("labels", [])},
                # findings a blind arbitrator proposed to add: the tie-breaker decides
                "added": list(d.get("added", [])) if task.items.get("added") else [],
            }
        return out


class DecisionsSerializer(serializers.Serializer):
    decisions = serializers.JSONField()
    version = serializers.IntegerField()


class SignSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False)
    # The version of the decisions the signer saw: a signature covers exactly those.
    version = serializers.IntegerField()


class ReopenSerializer(serializers.Serializer):
    reason = serializers.CharField()
    clusters = serializers.ListField(child=serializers.IntegerField(), required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False)
