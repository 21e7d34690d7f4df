"""Read API over the published decisions: what a user was offered last night, and why.

``GET /users/{user_id}/offer`` returns the user's row of ``promo_assignments`` for
the latest published ``run_date`` together with the online features (feature
service ``promo_response_v1``) the decision was based on.

Trust boundary: the path takes the *raw* ``user_id``, and the response carries
behaviour features. The API is for services inside the warehouse's trust
boundary (CRM back office, support tools), like the warehouse itself; it must
not be exposed to the public internet or to marketing tools, which get the
export keyed by ``user_key`` instead.

Every request needs ``Authorization: Bearer <PROMO_API_TOKEN>`` (compared in
constant time; 401 otherwise); the API refuses to start without a token. A
``user_id`` longer than 128 characters or with characters other than letters,
digits and ``_ . @ : + -`` is refused with 422 before the warehouse is queried.

Run it with ``uvicorn --factory promoflow.api:create_app`` (settings from the
environment, as everywhere else).
"""

from __future__ import annotations

import hmac
import math
import threading
from datetime import date
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from promoflow import contract, feature_store
from promoflow.settings import Settings
from promoflow.warehouse import Warehouse

ASSIGNMENT_FIELDS = list(contract.EXPORT_COLUMNS)  # user_id stays in the warehouse


def _json_value(value: Any) -> Any:
    """numpy / pandas scalars -> JSON; missing (NaN, NA, NaT) -> null."""
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


USER_ID_PATTERN = r"^[\w.@:+-]+$"  # \w is Unicode-aware: non-ASCII letters and digits are fine
USER_ID_MAX_LENGTH = 128


class MissingTokenError(RuntimeError):
    """The read API was asked to start without a bearer token."""


def create_app(settings: Settings | None = None, project: str = feature_store.FEAST_PROJECT) -> FastAPI:
    """The API for ``settings`` (from the environment when None)."""
    settings = settings or Settings.from_env()
    if not settings.api_token:
        raise MissingTokenError(
            "PROMO_API_TOKEN is empty: the read API serves raw user ids and behaviour features and does not start "
            "without a bearer token. Set PROMO_API_TOKEN from your secret manager "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))') and start it again."
        )
    expected_token = settings.api_token.encode()
    bearer = HTTPBearer(auto_error=False)

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        given = credentials.credentials.encode() if credentials and credentials.scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(given, expected_token):
            raise HTTPException(
                status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    app = FastAPI(
        title="promoflow read API",
        description="Last night's promotion decision per user, with the online features it was based on. "
        "Internal: takes raw user_id (inside the warehouse's trust boundary). Needs a bearer token.",
        dependencies=[Depends(require_token)],
    )
    store_lock = threading.Lock()
    store_holder: dict[str, Any] = {}

    def online_store():
        # Built on first use (the registry exists once the DAG has run) and reused:
        # building a FeatureStore reads the registry, too slow for every request.
        with store_lock:
            if "store" not in store_holder:
                store_holder["store"] = feature_store.feature_store(settings, project)
            return store_holder["store"]

    @app.get("/users/{user_id}/offer")
    def user_offer(
        user_id: str = Path(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=USER_ID_PATTERN),
    ) -> dict:
        """The user's assignment in the latest published run, plus its online features."""
        # One short connection per request: DuckDB allows one writer process, and the
        # nightly publish must not wait on a connection the API keeps open.
        with Warehouse(settings) as wh:
            schema = wh.default_schema
            if not wh.table_exists(schema, "promo_assignments"):
                raise HTTPException(
                    status_code=503, detail="no run has been published yet: table promo_assignments does not exist"
                )
            latest = wh.query(f"select max(run_date) from {schema}.promo_assignments")[0][0]
            if latest is None:
                raise HTTPException(
                    status_code=503, detail="no run has been published yet: table promo_assignments is empty"
                )
            rows = wh.query(
                f"select user_id, {', '.join(ASSIGNMENT_FIELDS)} from {schema}.promo_assignments where run_date = ? and user_id = ?",
                [latest, user_id],
            )
        # Defence in depth: only ever the asked user's row (never a collation's or a duplicate's look-alike).
        rows = [r[1:] for r in rows if r[0] == user_id]
        if len(rows) > 1:
            raise HTTPException(
                status_code=500, detail=f"{len(rows)} rows for one user in run_date {latest.isoformat()}"
            )
        if not rows:
            raise HTTPException(
                status_code=404,
                detail=f"unknown user {user_id!r}: no assignment in the latest run (run_date {latest.isoformat()})",
            )
        offer = {name: _json_value(value) for name, value in zip(ASSIGNMENT_FIELDS, rows[0])}
        features = feature_store.online_features(settings, [user_id], store=online_store())
        offer["features"] = {name: _json_value(value) for name, value in features.iloc[0].items() if name != "user_id"}
        return offer

    return app
