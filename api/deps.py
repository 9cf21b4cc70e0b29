"""Dependencies injected into routes; the resources themselves are made in lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from temporalio.client import Client

from activities.directory import CachedDirectory
from api.claim_gateway import ClaimGateway
from api.claim_status_board import ClaimStatusBoard
from api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


def get_gateway(request: Request) -> ClaimGateway:
    gateway: ClaimGateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[ClaimGateway, Depends(get_gateway)]


def get_directory(request: Request) -> CachedDirectory:
    directory: CachedDirectory = request.app.state.directory
    return directory


DirectoryDep = Annotated[CachedDirectory, Depends(get_directory)]


def get_claim_board(request: Request) -> ClaimStatusBoard:
    board: ClaimStatusBoard = request.app.state.claim_board
    return board


ClaimBoardDep = Annotated[ClaimStatusBoard, Depends(get_claim_board)]
