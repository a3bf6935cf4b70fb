"""The two tables of TechEmpower's benchmark: World (rows of random numbers) and Fortune (messages)."""

from __future__ import annotations

from django.db import models


class World(models.Model):
    randomNumber = models.IntegerField()  # TechEmpower's column name, in the JSON as well

    class Meta:
        db_table = "world"

    def as_dict(self) -> dict[str, int]:
        return {"id": self.pk, "randomNumber": self.randomNumber}


class Fortune(models.Model):
    message = models.CharField(max_length=2048)

    class Meta:
        db_table = "fortune"
