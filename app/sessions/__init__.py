"""Browser sessions for guardians, students and staff: server-side, rotating, timing out, CSRF."""
