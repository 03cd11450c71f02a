<?php
/**
 * Plugin Name: dispatch newsletter hook
 * Description: Sends each published post to dispatch (PUT /api/v1/articles/{id}) and, for posts
 *              tagged "breaking", asks dispatch to send it as breaking news.
 *
 * Put this file in wp-content/mu-plugins/ and define in wp-config.php:
 *   define('DISPATCH_URL', 'https://newsletter.example.com');   // dispatch's [web] public_url
 *   define('DISPATCH_KEY', 'dk_...');       // dispatch api-keys create --name wordpress --role editor
 *
 * transition_post_status fires for every status change, including the scheduled
 * "future -> publish" that wp_publish_post() makes from cron (no pre_post_update then).
 * Both calls are idempotent in dispatch: a repeated PUT changes nothing, and a repeated
 * breaking call returns the same editions and sends nothing.
 */

add_action('transition_post_status', function ($new_status, $old_status, $post) {
    if ($new_status !== 'publish' || $post->post_type !== 'post') {
        return;
    }
    if (!defined('DISPATCH_URL') || !defined('DISPATCH_KEY')) {
        return;
    }
    $id   = 'wp-' . $post->ID;   // our external_id: stable across edits
    $base = rtrim(DISPATCH_URL, '/') . '/api/v1/articles/' . rawurlencode($id);
    $cats = get_the_category($post->ID);
    $body = array(
        'title'        => html_entity_decode(get_the_title($post), ENT_QUOTES, 'UTF-8'),
        'url'          => get_permalink($post),
        'category'     => $cats ? $cats[0]->name : 'General News',
        'summary'      => wp_strip_all_tags(get_the_excerpt($post)),
        'author'       => get_the_author_meta('display_name', $post->post_author),
        'published_at' => get_post_time('c', true, $post),
    );
    $image = get_the_post_thumbnail_url($post, 'large');
    if ($image && strpos($image, 'https://') === 0) {
        $body['image_url'] = $image;
    }
    $args = array(
        'method'  => 'PUT',
        'timeout' => 10,
        'headers' => array(
            'Authorization' => 'Bearer ' . DISPATCH_KEY,
            'Content-Type'  => 'application/json',
        ),
        'body'    => wp_json_encode($body),
    );
    $res = wp_remote_request($base, $args);
    $code = is_wp_error($res) ? 0 : wp_remote_retrieve_response_code($res);
    if ($code !== 200 && $code !== 201) {
        error_log('dispatch: PUT ' . $id . ' failed: ' . (is_wp_error($res) ? $res->get_error_message() : wp_remote_retrieve_body($res)));
        return;
    }
    // Only first publication counts as news; "breaking" is a tag the newsroom sets.
    if ($old_status !== 'publish' && has_tag('breaking', $post)) {
        $args['method'] = 'POST';
        $args['body']   = wp_json_encode(new stdClass()); // {} = every list that carries breaking news
        $res = wp_remote_request($base . '/breaking', $args);
        if (is_wp_error($res) || wp_remote_retrieve_response_code($res) !== 202) {
            error_log('dispatch: breaking ' . $id . ' failed: ' . (is_wp_error($res) ? $res->get_error_message() : wp_remote_retrieve_body($res)));
        }
    }
}, 10, 3);
