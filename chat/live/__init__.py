"""The socket: a thin consumer, the action dispatch, delivery to one page, presence."""
