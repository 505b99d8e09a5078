#include "daemon/api_service.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <set>
#include <string>

namespace ed = ember::daemon;
namespace json = boost::json;

namespace {

// "/v1/messages/*" is what the router serves for "/v1/messages/{id}".
std::string router_form(std::string path) {
    const auto brace = path.find('{');
    if (brace != std::string::npos && path.back() == '}')
        path = path.substr(0, brace) + "*";
    return path;
}

std::set<std::pair<std::string, std::string>> document_routes() {
    std::set<std::pair<std::string, std::string>> out;
    const auto doc = json::parse(ed::openapi_document());
    for (const auto& path : doc.at("paths").as_object()) {
        for (const auto& op : path.value().as_object()) {
            std::string method(op.key());
            for (auto& c : method)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            out.emplace(method, router_form(std::string(path.key())));
        }
    }
    return out;
}

} // namespace

TEST_CASE("the OpenAPI document lists exactly the routes the router serves under /v1") {
    ed::Router router;
    ed::ApiService api(ed::ApiParts{}, ed::ApiSettings{});
    ed::add_api_routes(router, api);
    std::set<std::pair<std::string, std::string>> served;
    for (const auto& [method, path] : router.routes()) {
        if (path.starts_with("/v1/"))
            served.emplace(method, path);
    }
    const auto documented = document_routes();
    for (const auto& route : served) {
        CAPTURE(route.first);
        CAPTURE(route.second);
        CHECK(documented.count(route) == 1);
    }
    for (const auto& route : documented) {
        CAPTURE(route.first);
        CAPTURE(route.second);
        CHECK(served.count(route) == 1);
    }
    CHECK(served.size() >= 8);
}

TEST_CASE("the OpenAPI document is OpenAPI 3 with a bearer scheme and every $ref resolves") {
    const auto doc = json::parse(ed::openapi_document()).as_object();
    CHECK(doc.at("openapi").as_string().starts_with("3."));
    CHECK(doc.at("components").at("securitySchemes").at("bearer").at("scheme") == "bearer");
    const auto text = std::string(ed::openapi_document());
    const std::string marker = "\"$ref\": \"#/components/";
    for (auto pos = text.find(marker); pos != std::string::npos; pos = text.find(marker, pos + 1)) {
        const auto start = pos + marker.size();
        const auto ref = text.substr(start, text.find('"', start) - start);
        CAPTURE(ref);
        const auto slash = ref.find('/');
        REQUIRE(slash != std::string::npos);
        const auto& group = doc.at("components").at(ref.substr(0, slash)).as_object();
        CHECK(group.contains(ref.substr(slash + 1)));
    }
}

TEST_CASE("with no key configured every /v1 route answers 404, with a key a missing one 401") {
    ed::ApiService api(ed::ApiParts{}, ed::ApiSettings{});
    ed::HttpRequest request;
    request.method = "GET";
    request.path = "/v1/suppressions";
    auto refused = ed::authorize(api, request);
    CHECK(refused.key == nullptr);
    CHECK(refused.refusal.status == 404);

    ed::ApiSettings settings;
    settings.keys = std::make_shared<const ed::ApiKeys>(
        std::vector<ed::ApiKeyConfig>{{"app", ed::token_hash_hex("tok"), {"example.com"}}});
    api.apply(settings);
    refused = ed::authorize(api, request);
    CHECK(refused.refusal.status == 401);
    bool challenged = false;
    for (const auto& [name, value] : refused.refusal.headers)
        challenged = challenged || (name == "WWW-Authenticate" && value.starts_with("Bearer "));
    CHECK(challenged);

    request.headers.emplace_back("authorization", "Bearer nope");
    refused = ed::authorize(api, request);
    CHECK(refused.refusal.status == 401);
    CHECK(refused.refusal.body.find("not valid") != std::string::npos);

    request.headers.back().second = "Bearer tok";
    const auto ok = ed::authorize(api, request);
    REQUIRE(ok.key != nullptr);
    CHECK(ok.key->name == "app");
}

TEST_CASE("percent-decoding of path segments refuses broken escapes") {
    CHECK(ed::percent_decode("bob%40example.com") == "bob@example.com");
    CHECK(ed::percent_decode("a%2Bb@x") == "a+b@x");
    CHECK(ed::percent_decode("plain@x") == "plain@x");
    CHECK_FALSE(ed::percent_decode("bad%4").has_value());
    CHECK_FALSE(ed::percent_decode("bad%zz").has_value());
    CHECK_FALSE(ed::percent_decode("%").has_value());
}
