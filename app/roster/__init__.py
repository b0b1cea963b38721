"""The roster: municipality, schools, homerooms, students, guardians, their links, staff, calendar."""
