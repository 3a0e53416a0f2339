"""msgraph-sdk's Teams and education request builders against the sandbox: the calls the teams phase makes
work, and every answer deserialises into the SDK's models with no unknown properties."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.channel import Channel
from msgraph.generated.models.channel_membership_type import ChannelMembershipType
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.chat_message_from_identity_set import ChatMessageFromIdentitySet
from msgraph.generated.models.education_class import EducationClass
from msgraph.generated.models.giphy_rating_type import GiphyRatingType
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.team import Team
from msgraph.generated.models.team_fun_settings import TeamFunSettings
from msgraph.generated.models.teamwork_user_identity import TeamworkUserIdentity
from msgraph.generated.models.teamwork_user_identity_type import TeamworkUserIdentityType
from msgraph_core import GraphClientFactory

from migrations.graph.sandbox_credential import AsyncSandboxCredential
from tests.sandbox.conftest import make_group, make_user, unique
from tests.sandbox.test_sdk import clean

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def sdk(sandbox_url, target_id) -> AsyncIterator[GraphServiceClient]:
    world = sandbox_url.world
    before = world.settings
    world.apply_settings(
        before.replace(teams_group_delay_s=0.0, teams_operation_s=0.0, teams_site_delay_s=0.0)
    )
    cred = AsyncSandboxCredential(sandbox_url, target_id)
    auth = AzureIdentityAuthenticationProvider(
        cred, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(timeout=30),
        options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)},
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{sandbox_url}/v1.0"
    yield GraphServiceClient(request_adapter=adapter)
    world.apply_settings(before)


async def test_team_channel_import_and_completion_through_the_sdk(sdk, target, sandbox_url, target_id):
    owner = make_user(target)
    group = make_group(
        target,
        unified=True,
        **{"owners@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{owner['id']}"]},
    )
    team = await sdk.groups.by_group_id(group["id"]).team.put(
        Team(fun_settings=TeamFunSettings(allow_giphy=True, giphy_content_rating=GiphyRatingType.Strict))
    )
    assert team is not None and team.id == group["id"]
    clean(team)
    channel = await sdk.teams.by_team_id(team.id).channels.post(
        Channel(
            display_name=unique("History"),
            membership_type=ChannelMembershipType.Standard,
            created_date_time=datetime(2024, 1, 1, tzinfo=UTC),
            additional_data={"@microsoft.graph.channelCreationMode": "migration"},
        )
    )
    assert channel is not None and channel.id
    clean(channel)
    messages = sdk.teams.by_team_id(team.id).channels.by_channel_id(channel.id).messages
    sent = await messages.post(
        ChatMessage(
            created_date_time=datetime(2024, 1, 2, 9, 30, 0, 250_000, tzinfo=UTC),
            from_=ChatMessageFromIdentitySet(
                user=TeamworkUserIdentity(
                    id=owner["id"],
                    display_name=owner["displayName"],
                    user_identity_type=TeamworkUserIdentityType.AadUser,
                )
            ),
            body=ItemBody(content_type=BodyType.Html, content="<p>Welcome</p>"),
        )
    )
    assert sent is not None and sent.created_date_time == datetime(2024, 1, 2, 9, 30, 0, 250_000, tzinfo=UTC)
    clean(sent)
    folder = await sdk.teams.by_team_id(team.id).channels.by_channel_id(channel.id).files_folder.get()
    assert folder is not None and folder.name == channel.display_name
    await sdk.teams.by_team_id(team.id).channels.by_channel_id(channel.id).complete_migration.post()
    after = await sdk.teams.by_team_id(team.id).channels.by_channel_id(channel.id).get()
    assert (
        after is not None and after.migration_mode is not None and after.migration_mode.value == "completed"
    )
    with pytest.raises(ODataError) as refused:
        await messages.get()
    assert refused.value.response_status_code == 403


async def test_education_class_through_the_sdk(sdk):
    made = await sdk.education.classes.post(
        EducationClass(display_name="8B Science", mail_nickname=unique("cls"), description="Science")
    )
    assert made is not None and made.id
    clean(made)
    listed = await sdk.education.classes.get()
    assert listed is not None and any(c.id == made.id for c in listed.value or [])
    group = await sdk.education.classes.by_education_class_id(made.id).group.get()
    assert group is not None and group.id == made.id
