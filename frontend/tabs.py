"""Which chat each open browser tab shows, so a closed tab's sandbox can be stopped after a grace
period (not removed: its files stay, and reopening the chat starts it again)."""

from __future__ import annotations

import asyncio
import logging

from agent.service import ChatService
from executor import ExecutorError

logger = logging.getLogger(__name__)


class TabTracker:
    """Which chat each open tab shows, so a closed tab's sandbox can be stopped after a grace."""

    def __init__(self, service: ChatService, grace_s: float) -> None:
        self.service = service
        self.grace_s = grace_s
        self.by_tab: dict[str, tuple[str, str]] = {}
        self._timers: dict[tuple[str, str], asyncio.Task] = {}

    def opened(self, tab: str, user: str, session: str) -> None:
        self.by_tab[tab] = (user, session)
        timer = self._timers.pop((user, session), None)
        if timer is not None:
            timer.cancel()

    def closed(self, tab: str) -> None:
        chat = self.by_tab.pop(tab, None)
        if chat is None or chat in self.by_tab.values():
            return
        self._timers[chat] = asyncio.get_running_loop().create_task(self._stop_later(chat))

    async def _stop_later(self, chat: tuple[str, str]) -> None:
        await asyncio.sleep(self.grace_s)
        self._timers.pop(chat, None)
        if chat in self.by_tab.values() or self.service.is_running(*chat):
            return
        try:
            await self.service.stop_sandbox(*chat)
            logger.info("stopped the sandbox of a closed tab's chat")
        except ExecutorError as exc:
            logger.warning("could not stop a closed tab's sandbox: %s", exc)
