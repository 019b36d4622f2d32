ROLES = ["admin", "asset_manager", "technician", "recycler_operator", "auditor"]


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
