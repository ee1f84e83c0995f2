"""Page-number pagination for every list endpoint; integrations may ask for bigger pages, up to a cap."""

from rest_framework.pagination import PageNumberPagination


class LiveHumanPagination(PageNumberPagination):
    """``?page=N`` and optionally ``?page_size=M`` (at most 200, so one request stays cheap)."""

    page_size_query_param = "page_size"
    max_page_size = 200
