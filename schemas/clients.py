"""Arguments of the client blocks: the client itself, its tokens, logs and metrics."""

from schemas.base import ClientScoped, TenantScoped, sorting, time_window
from schemas.fields import Boolean, Credentials, List, Select, String

CLIENT_TYPE = ["device", "user"]
PROVISIONING = "provisioning_params"


def client_fields(required: bool) -> dict:
    """A client's writable fields: required ones are so only when creating it."""
    return {
        "type": Select(
            "device for an IoT device, user for a person using an app.",
            options=CLIENT_TYPE,
            required=required,
        ),
        "name": String("The client's name.", required=required, example="pump-7"),
        "description": String("A short description of the client.", example="Water pump"),
        "sub_topics": List(
            'Topics the client may subscribe to, e.g. ["sub1", "sub2"] or "sub1,sub2".',
            data_key="subTopics",
            example=["sub1", "sub2"],
        ),
        "pub_topics": List(
            "Topics the client may publish to; publishMessage only accepts one of these.",
            data_key="pubTopics",
            example=["pub1"],
        ),
        "secure_cert_enabled": Boolean(
            "true makes the client authenticate with a client certificate when it connects.",
            data_key="secureCertEnabled",
        ),
        "provisioning_id": String(
            "A globally unique ID of the device: its IMEI, MAC address, UUID or serial number.",
            data_key="provisioningId",
            required=required,
            example="356938035643809",
            nonblank=True,
            group=PROVISIONING,
        ),
        "provisioning_key": Credentials(
            "A key of 6 to 12 letters and digits, case sensitive (KEY01 and key01 differ).",
            data_key="provisioningKey",
            pattern=r"[A-Za-z0-9]{6,12}",
            pattern_hint="Must be 6 to 12 letters and digits.",
            group=PROVISIONING,
            example="Key0001",
        ),
        "gsm_msisdn": String(
            "The mobile number of the device's SIM, digits only, without the country code.",
            data_key="gsmMsisdn",
            pattern=r"[0-9]{1,15}",
            pattern_hint="Must be the mobile number in digits only, without the country code.",
            group=PROVISIONING,
            example="9876543210",
        ),
        "gsm_apn": String(
            "The Access Point Name of the mobile network.",
            data_key="gsmApn",
            group=PROVISIONING,
            example="internet",
        ),
        "gsm_username": String(
            "The user name for the APN.", data_key="gsmUsername", group=PROVISIONING, example="apn"
        ),
        # Secrets, but optional text as before: nonblank=False keeps "  " as it was accepted.
        "gsm_password": Credentials(
            "The password for the APN.",
            data_key="gsmPassword",
            nonblank=False,
            group=PROVISIONING,
            example="apn-password",
        ),
        "gsm_sim_pin": Credentials(
            "The PIN of the SIM.",
            data_key="gsmSimPin",
            nonblank=False,
            group=PROVISIONING,
            example="1234",
        ),
        "gsm_send_sms": Boolean(
            "1 (or true) sends the provisioning parameters to the device by SMS.",
            data_key="gsmSendSms",
            wire="str",
            group=PROVISIONING,
            default=False,
        ),
        "gsm_isd_code": String(
            "The country calling code, e.g. +91 for India.",
            data_key="gsmIsdCode",
            pattern=r"\+?[0-9]{1,4}",
            pattern_hint="Must be a country calling code such as +91.",
            group=PROVISIONING,
            example="+91",
        ),
    }


class CreateClient(TenantScoped.from_dict(client_fields(required=True))):
    pass


class UpdateClient(ClientScoped.from_dict(client_fields(required=False))):
    at_least_one = tuple(client_fields(required=False))


class GetClients(TenantScoped):
    type = Select("Only clients of this type.", options=CLIENT_TYPE)
    secure = Boolean("true: only clients with certificate authentication; false: only without.")
    # The states a client's result shows (its state field): online or offline.
    state = Select("Only clients in this state.", options=["online", "offline"])
    sort_by, sort_order = sorting("id", "name", "type", "created_at", "updated_at")


class OneClient(ClientScoped):
    pass


class GetClientNetworkLogs(ClientScoped):
    start, end = time_window()
    mac_id = String(
        "Only this network interface: its MAC address in hex.",
        data_key="macId",
        example="a4c138f00d1e",
    )
    imei = String("Only this network interface: its IMEI.", example="356938035643809")
    msisdn = String(
        "Only this SIM, by mobile number (devices with several SIMs).", example="9876543210"
    )
    iccid = String(
        "Only this SIM, by its ICCID (devices with several SIMs).", example="8991101200003204510"
    )
    sort_by, sort_order = sorting("ts", "network")


class GetClientSessions(ClientScoped):
    start, end = time_window()
    sort_by, sort_order = sorting("start", "end", "messages")


class GetClientMetrics(ClientScoped):
    interval = Select(
        "day sums up the last 24 hours (InstaMsg's default), month the last 30 days.",
        options=["day", "month"],
        default="day",
    )


class GetClientLogs(ClientScoped):
    start, end = time_window()
    level = Select("Only logs of this level.", options=["DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
    creator = Select(
        "Only logs written by InstaMsg (the server) or by the client.",
        options=["InstaMsg", "client"],
    )
