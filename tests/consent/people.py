"""Fictional card holders for the national-ID stand-in in tests (the demo lists its world's guardians)."""

from __future__ import annotations

from mocks.national_id.app import Person

RESIDENTS = [
    Person("jp-nid-0001", "加賀 花子", "石川県加賀市大聖寺南町1-1", "1985-04-12", "female"),
    Person("jp-nid-0002", "山中 太郎", "石川県加賀市山中温泉本町2-3", "1981-09-30", "male"),
    Person("jp-nid-0003", "片山津 由美", "石川県加賀市片山津温泉乙65", "1990-01-22", "female"),
]
