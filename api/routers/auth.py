"""Sign-in with directory credentials (tokens and sessions arrive with the roles)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, SecretStr

from api.deps import DirectoryDep

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=1024)


class SignedInUser(BaseModel):
    username: str
    display_name: str
    email: str
    groups: list[str]


@router.post(
    "/login",
    response_model=SignedInUser,
    responses={401: {"description": "wrong credentials"}, 403: {"description": "account locked or disabled"},
               503: {"description": "directory unavailable"}},
)  # fmt: skip
async def login(body: LoginBody, directory: DirectoryDep) -> SignedInUser:
    """Search the user's DN with the service account, then bind as the user."""
    user = await directory.authenticate(body.username, body.password.get_secret_value())
    return SignedInUser(
        username=user.username, display_name=user.display_name, email=user.email, groups=sorted(user.groups)
    )
