"""The national-ID sign-in stand-in (デジタル認証アプリ / My Number card login)."""
