# A small image that serves Orthodex. Migrations run once per deploy, not per worker:
#   docker run --rm -e DATABASE_URL=... orthodex litestar --app app:create_app db upgrade
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md app.py ./
COPY core ./core
COPY accounts ./accounts
COPY directory ./directory
COPY booking ./booking
COPY web ./web
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# numba caches the compiled search kernels; site-packages is not the app user's to write.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba-cache
RUN useradd --create-home --uid 10001 orthodex
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=10001:10001 app.py ./
# The default SQLite database and the mail drop live here; mount a volume to keep them.
RUN mkdir -p /app/var && chown 10001:10001 /app/var
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
CMD ["litestar", "--app", "app:create_app", "run", "--host", "0.0.0.0", "--port", "8000", "--wc", "2"]
