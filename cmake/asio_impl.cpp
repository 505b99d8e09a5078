// The one translation unit that holds Asio's, Asio SSL's and Beast's
// out-of-line definitions (BOOST_ASIO_SEPARATE_COMPILATION).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
