"""The family as a picture: where each member and each link goes on the result page.

The subject sits at the top; the other members sit on an arc below, each joined to the
subject by their relationship and the confidence of the match. A link the broker was
unsure of is drawn dashed and labelled, so nothing depends on colour alone; the page
lists the same members and links as text beside the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker.queries.schemas import FamilyView, LinkView, MemberView

__all__ = ["FamilyGraph", "GraphEdge", "GraphNode", "layout"]

WIDTH = 720
_NODE_Y = 70
_RADIUS = 36
_SURE = 0.95


@dataclass(frozen=True, slots=True)
class GraphNode:
    member_id: str
    label: str
    detail: str
    x: float
    y: float
    is_subject: bool


@dataclass(frozen=True, slots=True)
class GraphEdge:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    uncertain: bool

    @property
    def mid(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2


@dataclass(frozen=True, slots=True)
class FamilyGraph:
    width: int
    height: int
    radius: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]


def _percent(value: float) -> str:
    return f"{math.floor(value * 1000) / 10:g}%"


def _label(member: MemberView) -> str:
    if member.is_subject:
        return "Subject"
    return (member.relationship or "member").split(" / ")[0].capitalize()


def layout(view: FamilyView) -> FamilyGraph:
    """Positions for every member of ``view`` and every link between them."""
    subject = next((m for m in view.members if m.is_subject), None)
    others = [m for m in view.members if m is not subject]
    height = 160 if not others else 320
    nodes: dict[str, GraphNode] = {}
    if subject is not None:
        nodes[subject.member_id] = GraphNode(
            subject.member_id,
            _label(subject),
            f"{subject.member_id} · {len(subject.records)} records",
            WIDTH / 2,
            _NODE_Y,
            True,
        )
    for i, member in enumerate(others):
        # Spread the others on an arc so every edge from the subject has room for a label.
        angle = math.pi * (i + 1) / (len(others) + 1)
        x = WIDTH / 2 - math.cos(angle) * (WIDTH / 2 - 70)
        y = _NODE_Y + 90 + math.sin(angle) * 110
        nodes[member.member_id] = GraphNode(
            member.member_id,
            _label(member),
            f"{member.member_id} · {len(member.records)} records",
            x,
            y,
            False,
        )
    edges: list[GraphEdge] = []
    if subject is not None:
        start = nodes[subject.member_id]
        for member in others:
            end = nodes[member.member_id]
            edges.append(
                GraphEdge(
                    start.x,
                    start.y,
                    end.x,
                    end.y,
                    _percent(member.confidence),
                    member.confidence < _SURE,
                )
            )
    edges.extend(_uncertain_edges(view.uncertain_links, nodes))
    return FamilyGraph(WIDTH, height, _RADIUS, list(nodes.values()), edges)


def _uncertain_edges(links: list[LinkView], nodes: dict[str, GraphNode]) -> list[GraphEdge]:
    edges = []
    for link in links:
        left = nodes.get(link.left_member or "")
        right = nodes.get(link.right_member or "")
        if left is None or right is None or left is right:
            continue
        edges.append(
            GraphEdge(
                left.x,
                left.y,
                right.x,
                right.y,
                f"same person? {_percent(link.confidence)}",
                True,
            )
        )
    return edges
